//! Whether a test that needs an external tool runs, skips or fails.
//!
//! A missing tool is a failure, never a quiet pass: a green run must mean the real
//! component was asked. Skipping is something a person asks for by name, in
//! `ESPER_SKIP` (a comma list); a name the list does not know fails too, so a typo
//! cannot turn into a skip. The decision is [`decide`], a pure function, so its
//! cases are tested without touching `PATH` or the environment.

use std::fmt;
use std::path::PathBuf;

/// The environment variable that names the tools whose tests skip.
pub const SKIP_VARIABLE: &str = "ESPER_SKIP";

/// An external tool some tests need at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    Redis,
    Promtool,
    Prometheus,
    /// Headless Chromium, which opens the `--timeline` pages.
    Chromium,
}

impl Tool {
    /// Every tool, in the order the messages list them.
    pub const ALL: [Self; 4] = [Self::Redis, Self::Promtool, Self::Prometheus, Self::Chromium];

    /// Its name in `ESPER_SKIP`.
    pub const fn skip_name(self) -> &'static str {
        match self {
            Self::Redis => "redis",
            Self::Promtool => "promtool",
            Self::Prometheus => "prometheus",
            Self::Chromium => "chromium",
        }
    }

    /// The command looked for on `PATH`.
    pub const fn command(self) -> &'static str {
        match self {
            Self::Redis => "redis-server",
            Self::Promtool => "promtool",
            Self::Prometheus => "prometheus",
            Self::Chromium => "chromium",
        }
    }

    /// The Debian package that installs it.
    pub const fn package(self) -> &'static str {
        match self {
            Self::Redis => "redis-server",
            Self::Promtool | Self::Prometheus => "prometheus",
            Self::Chromium => "chromium",
        }
    }
}

/// What a test does about one tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The tool is there and nobody asked to skip it.
    Run,
    /// `ESPER_SKIP` names the tool.
    Skip,
    /// The test fails with this message.
    Fail(String),
}

/// The decision for `test`, which needs `tool`: `installed` says whether it is on
/// `PATH`, `esper_skip` is the value of `ESPER_SKIP` if set. A bad `ESPER_SKIP` fails
/// every test that needs a tool, whether or not the tool is installed.
pub fn decide(test: &str, tool: Tool, installed: bool, esper_skip: Option<&str>) -> Decision {
    let skipped = match parse_skip_list(esper_skip.unwrap_or("")) {
        Ok(skipped) => skipped,
        Err(error) => return Decision::Fail(format!("{test}: {error}")),
    };
    if skipped.contains(&tool) {
        Decision::Skip
    } else if installed {
        Decision::Run
    } else {
        Decision::Fail(format!(
            "{test}: {} is not installed (Debian package {}; ci/setup installs it). \
             To skip this test on purpose, set {SKIP_VARIABLE}={}",
            tool.command(),
            tool.package(),
            tool.skip_name()
        ))
    }
}

/// An `ESPER_SKIP` entry that names no tool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownSkip(String);

impl fmt::Display for UnknownSkip {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let known: Vec<&str> = Tool::ALL.iter().map(|tool| tool.skip_name()).collect();
        write!(formatter, "{SKIP_VARIABLE} names {:?}, which is not a tool; known: {}", self.0, known.join(","))?;
        if self.0 == "libtorch" {
            // The libtorch tests are compiled only with `--features tch`, so there is
            // nothing to skip at run time: leaving the feature off is how to not run them.
            write!(formatter, " (the libtorch tests are built only with --features tch; leave the feature off)")?;
        }
        Ok(())
    }
}

/// The tools a comma list names; blanks around names and empty entries are ignored.
pub fn parse_skip_list(value: &str) -> Result<Vec<Tool>, UnknownSkip> {
    value
        .split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(|name| {
            Tool::ALL.into_iter().find(|tool| tool.skip_name() == name).ok_or_else(|| UnknownSkip(name.to_owned()))
        })
        .collect()
}

/// `tool`'s path on `PATH` for `test`, or `None` when `ESPER_SKIP` skips it (after
/// printing `SKIPPED (ESPER_SKIP)`); panics with the install hint when it is missing.
pub fn require(tool: Tool, test: &str) -> Option<PathBuf> {
    let found = find_on_path(tool.command());
    let esper_skip = std::env::var(SKIP_VARIABLE).ok();
    match decide(test, tool, found.is_some(), esper_skip.as_deref()) {
        Decision::Run => found,
        Decision::Skip => {
            eprintln!("SKIPPED (ESPER_SKIP) {test}: needs {}", tool.command());
            None
        }
        Decision::Fail(message) => panic!("{message}"),
    }
}

/// The first file called `name` in a directory of `PATH`.
fn find_on_path(name: &str) -> Option<PathBuf> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths).map(|dir| dir.join(name)).find(|path| path.is_file())
}
