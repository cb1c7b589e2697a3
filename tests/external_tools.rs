//! The rule for tests that need an external tool (`support::external`): a missing
//! tool fails with the install hint, `ESPER_SKIP` skips by name, and a name it does
//! not know fails, so neither a missing package nor a typo passes silently.
//!
//! The cases of the pure [`decide`] come first; then this binary runs itself with a
//! `PATH` that lacks `redis-server`, to show the real starter fails or skips.

mod support;

use std::process::{Command, Output};

use support::RealRedis;
use support::external::{Decision, SKIP_VARIABLE, Tool, decide, parse_skip_list};

#[test]
fn an_installed_tool_runs_when_nothing_is_skipped() {
    assert_eq!(decide("t", Tool::Redis, true, None), Decision::Run);
    assert_eq!(decide("t", Tool::Redis, true, Some("")), Decision::Run);
    assert_eq!(decide("t", Tool::Redis, true, Some("promtool,prometheus")), Decision::Run);
}

#[test]
fn a_missing_tool_fails_with_the_debian_package_whatever_ci_says() {
    for (tool, package) in [
        (Tool::Redis, "redis-server"),
        (Tool::Promtool, "prometheus"),
        (Tool::Prometheus, "prometheus"),
        (Tool::Chromium, "chromium"),
    ] {
        let Decision::Fail(message) = decide("the_test", tool, false, None) else {
            panic!("{tool:?} missing must fail");
        };
        assert!(message.starts_with("the_test: "), "names the test: {message}");
        assert!(message.contains(&format!("{} is not installed", tool.command())), "{message}");
        assert!(message.contains(&format!("Debian package {package}; ci/setup installs it")), "{message}");
        assert!(message.contains(&format!("ESPER_SKIP={}", tool.skip_name())), "says how to skip: {message}");
    }
}

#[test]
fn esper_skip_skips_the_tools_it_names_installed_or_not() {
    assert_eq!(decide("t", Tool::Redis, false, Some("redis")), Decision::Skip);
    assert_eq!(decide("t", Tool::Redis, true, Some("redis")), Decision::Skip);
    assert_eq!(decide("t", Tool::Prometheus, false, Some(" redis , prometheus ")), Decision::Skip);
    assert!(matches!(decide("t", Tool::Promtool, false, Some("redis,prometheus")), Decision::Fail(_)));
}

#[test]
fn a_typo_in_esper_skip_fails_even_where_the_tool_is_installed() {
    for value in ["reddis", "redis,promtol", "Redis", "redis-server"] {
        let Decision::Fail(message) = decide("t", Tool::Redis, true, Some(value)) else {
            panic!("ESPER_SKIP={value} must fail");
        };
        assert!(message.contains("ESPER_SKIP names"), "{message}");
        assert!(message.contains("known: redis,promtool,prometheus,chromium"), "{message}");
    }
}

#[test]
fn libtorch_in_esper_skip_says_the_feature_is_the_switch() {
    let error = parse_skip_list("libtorch").expect_err("libtorch is not skipped at run time");
    assert!(error.to_string().contains("built only with --features tch"), "{error}");
}

/// Starts a real `redis-server`; the two tests below run it in a child process.
#[test]
fn real_redis_starts_or_is_skipped_by_name() {
    let _redis = RealRedis::start("real_redis_starts_or_is_skipped_by_name");
}

/// Runs [`real_redis_starts_or_is_skipped_by_name`] in this binary with a `PATH`
/// holding no `redis-server` (an empty directory) and `ESPER_SKIP` as given.
fn run_starter_without_redis(esper_skip: Option<&str>) -> (Output, String) {
    let label = esper_skip.unwrap_or("unset");
    let empty = std::env::temp_dir().join(format!("esper-empty-path-{}-{label}", std::process::id()));
    std::fs::create_dir_all(&empty).expect("an empty PATH directory");
    let mut command = Command::new(std::env::current_exe().expect("this test binary"));
    command.args(["--exact", "real_redis_starts_or_is_skipped_by_name", "--nocapture", "--test-threads=1"]);
    command.env("PATH", &empty).env_remove(SKIP_VARIABLE);
    if let Some(value) = esper_skip {
        command.env(SKIP_VARIABLE, value);
    }
    let output = command.output().expect("the test binary runs");
    let said = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let _removed = std::fs::remove_dir(&empty);
    (output, said)
}

#[test]
fn without_redis_server_on_path_the_starter_fails_with_the_install_hint() {
    let (output, said) = run_starter_without_redis(None);
    assert!(!output.status.success(), "a missing redis-server must fail the test:\n{said}");
    assert!(
        said.contains("redis-server is not installed (Debian package redis-server; ci/setup installs it)"),
        "{said}"
    );
    assert!(!said.contains("SKIPPED"), "{said}");
}

#[test]
fn with_esper_skip_redis_the_starter_skips_and_says_so() {
    let (output, said) = run_starter_without_redis(Some("redis"));
    assert!(output.status.success(), "ESPER_SKIP=redis skips:\n{said}");
    assert!(
        said.contains("SKIPPED (ESPER_SKIP) real_redis_starts_or_is_skipped_by_name: needs redis-server"),
        "{said}"
    );
}
