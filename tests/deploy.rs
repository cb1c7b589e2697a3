//! `deploy/compose.yaml` checked without Docker: it parses, every file and
//! directory it mounts or builds from exists, and its pieces point at each other —
//! Prometheus's config and rules files are the mounted ones (so the file `ci/test`
//! checks with `promtool check config` is the one the container loads), Prometheus
//! scrapes the port `esper up` serves Nissa on, and Grafana's provisioning finds the
//! datasource and `ci/grafana/esper.json`. What this cannot show is that the images
//! start: that needs `docker compose -f deploy/compose.yaml up`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, Deserialize)]
struct Compose {
    services: BTreeMap<String, Service>,
    #[serde(default)]
    volumes: BTreeMap<String, Option<serde_norway::Value>>,
}

#[derive(Debug, Deserialize)]
struct Service {
    image: Option<String>,
    build: Option<Build>,
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    volumes: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Build {
    context: String,
    dockerfile: Option<String>,
}

#[derive(Debug, Deserialize)]
struct PrometheusConfig {
    #[serde(default)]
    rule_files: Vec<String>,
    scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Debug, Deserialize)]
struct ScrapeConfig {
    static_configs: Vec<StaticConfig>,
}

#[derive(Debug, Deserialize)]
struct StaticConfig {
    targets: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Providers {
    providers: Vec<Provider>,
}

#[derive(Debug, Deserialize)]
struct Provider {
    options: ProviderOptions,
}

#[derive(Debug, Deserialize)]
struct ProviderOptions {
    path: String,
}

#[derive(Debug, Deserialize)]
struct Datasources {
    datasources: Vec<Datasource>,
}

#[derive(Debug, Deserialize)]
struct Datasource {
    url: String,
}

/// A bind mount: a host path (relative to the compose file) at a container path.
struct Mount {
    host: PathBuf,
    container: String,
}

/// The files the stack is made of, as text, so a test can plant a mistake in one.
struct Stack {
    /// The directory of compose.yaml, which its relative paths start from.
    dir: PathBuf,
    compose: String,
    prometheus: String,
}

impl Stack {
    fn from_checkout() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy");
        let read = |name: &str| {
            std::fs::read_to_string(dir.join(name)).unwrap_or_else(|error| panic!("deploy/{name}: {error}"))
        };
        Self { compose: read("compose.yaml"), prometheus: read("prometheus.yml"), dir }
    }

    /// Every way the stack is broken; empty when it is whole.
    fn problems(&self) -> Vec<String> {
        let compose: Compose = match serde_norway::from_str(&self.compose) {
            Ok(compose) => compose,
            Err(error) => return vec![format!("compose.yaml does not parse: {error}")],
        };
        let mut problems = Vec::new();
        for (name, service) in &compose.services {
            for volume in &service.volumes {
                let source = volume.split(':').next().unwrap_or_default();
                let declared = is_bind(source) || compose.volumes.contains_key(source);
                if !declared {
                    problems.push(format!("{name}: named volume {source:?} is not declared under `volumes:`"));
                }
            }
            for mount in mounts(service) {
                if !self.dir.join(&mount.host).exists() {
                    problems.push(format!("{name}: mounts {}, which does not exist", mount.host.display()));
                }
            }
            if let Some(build) = &service.build {
                let context = self.dir.join(&build.context);
                let dockerfile = context.join(build.dockerfile.as_deref().unwrap_or("Dockerfile"));
                if !dockerfile.is_file() {
                    problems.push(format!("{name}: builds from {}, which does not exist", dockerfile.display()));
                }
            }
            if service.image.is_none() && service.build.is_none() {
                problems.push(format!("{name}: neither `image` nor `build`"));
            }
        }
        let service = |name: &str| compose.services.get(name);
        match service("redis").and_then(|redis| redis.image.as_deref()) {
            Some(image) if image.starts_with("redis:7.0") => {}
            other => problems.push(format!("redis: the image must be Redis 7.0, not {other:?}")),
        }
        let nissa_port = service("esper").and_then(|esper| flag(&esper.command, "--nissa-addr")).map(port_of);
        if nissa_port.is_none() {
            problems.push("esper: no `--nissa-addr` in its command".to_owned());
        }
        match service("prometheus") {
            Some(prometheus) => problems.extend(self.prometheus_problems(&compose, prometheus, nissa_port)),
            None => problems.push("no prometheus service".to_owned()),
        }
        match service("grafana") {
            Some(grafana) => problems.extend(self.grafana_problems(&compose, grafana)),
            None => problems.push("no grafana service".to_owned()),
        }
        problems
    }

    fn prometheus_problems(&self, compose: &Compose, service: &Service, nissa_port: Option<&str>) -> Vec<String> {
        let mut problems = Vec::new();
        let mounts = mounts(service);
        let Some(config) = flag(&service.command, "--config.file") else {
            return vec!["prometheus: no --config.file".to_owned()];
        };
        match mounts.iter().find(|mount| mount.container == config) {
            Some(mount) if same_file(&self.dir.join(&mount.host), &self.dir.join("prometheus.yml")) => {}
            _ => problems.push(format!("prometheus: {config} is not deploy/prometheus.yml mounted")),
        }
        let parsed: PrometheusConfig = match serde_norway::from_str(&self.prometheus) {
            Ok(parsed) => parsed,
            Err(error) => return vec![format!("prometheus.yml does not parse: {error}")],
        };
        if parsed.rule_files.is_empty() {
            problems.push("prometheus.yml loads no rule files".to_owned());
        }
        let config_dir = config.rsplit_once('/').map_or("/", |(dir, _)| dir);
        for rules in &parsed.rule_files {
            // Prometheus (in the container) and promtool (in the checkout) both
            // resolve a relative rule path against the config file's directory.
            let in_container = normalize(&format!("{config_dir}/{rules}"));
            let in_checkout = self.dir.join(rules);
            match mounts.iter().find(|mount| mount.container == in_container) {
                Some(mount) if same_file(&self.dir.join(&mount.host), &in_checkout) => {}
                _ => problems.push(format!(
                    "prometheus: rule file {rules} is {in_container} in the container, which is not {} mounted",
                    in_checkout.display()
                )),
            }
        }
        for target in parsed.scrape_configs.iter().flat_map(|scrape| &scrape.static_configs).flat_map(|s| &s.targets) {
            let (host, port) = target.rsplit_once(':').unwrap_or((target, ""));
            if !compose.services.contains_key(host) {
                problems.push(format!("prometheus scrapes {target}, and {host} is no service"));
            } else if host == "esper" && Some(port) != nissa_port {
                problems.push(format!("prometheus scrapes {target}, but esper serves Nissa on port {nissa_port:?}"));
            }
        }
        problems
    }

    fn grafana_problems(&self, compose: &Compose, service: &Service) -> Vec<String> {
        let mut problems = Vec::new();
        let mounts = mounts(service);
        let provisioning = |kind: &str| {
            mounts
                .iter()
                .find(|mount| mount.container.starts_with(&format!("/etc/grafana/provisioning/{kind}/")))
                .and_then(|mount| std::fs::read_to_string(self.dir.join(&mount.host)).ok())
        };
        match provisioning("dashboards").map(|text| serde_norway::from_str::<Providers>(&text)) {
            Some(Ok(providers)) => {
                let dashboard = self.dir.join("../ci/grafana/esper.json");
                let found = providers.providers.iter().any(|provider| {
                    mounts.iter().any(|mount| {
                        mount.container.starts_with(&format!("{}/", provider.options.path))
                            && same_file(&self.dir.join(&mount.host), &dashboard)
                    })
                });
                if !found {
                    problems.push("grafana: no dashboard provider's path holds ci/grafana/esper.json".to_owned());
                }
            }
            Some(Err(error)) => problems.push(format!("grafana: the dashboard provider does not parse: {error}")),
            None => problems.push("grafana: no dashboard provider mounted".to_owned()),
        }
        match provisioning("datasources").map(|text| serde_norway::from_str::<Datasources>(&text)) {
            Some(Ok(sources)) => {
                let prometheus_port = compose
                    .services
                    .get("prometheus")
                    .and_then(|prometheus| flag(&prometheus.command, "--web.listen-address"))
                    .map_or("9090", port_of);
                let wanted = format!("http://prometheus:{prometheus_port}");
                if !sources.datasources.iter().any(|source| source.url == wanted) {
                    problems.push(format!("grafana: no datasource at {wanted}"));
                }
            }
            Some(Err(error)) => problems.push(format!("grafana: the datasource file does not parse: {error}")),
            None => problems.push("grafana: no datasource mounted".to_owned()),
        }
        problems
    }
}

/// A service's bind mounts (`./a:/b[:ro]`, `../a:/b`); named volumes are left out.
fn mounts(service: &Service) -> Vec<Mount> {
    service
        .volumes
        .iter()
        .filter_map(|volume| {
            let mut parts = volume.split(':');
            let (host, container) = (parts.next()?, parts.next()?);
            is_bind(host).then(|| Mount { host: PathBuf::from(host), container: container.to_owned() })
        })
        .collect()
}

/// Whether a volume's source is a host path (a bind mount) rather than a named volume.
fn is_bind(source: &str) -> bool {
    source.starts_with('.') || source.starts_with('/')
}

/// The value of `--name=value` or `--name value` in a command list.
fn flag<'a>(command: &'a [String], name: &str) -> Option<&'a str> {
    command.iter().enumerate().find_map(|(index, word)| {
        if word == name {
            command.get(index + 1).map(String::as_str)
        } else {
            word.strip_prefix(name).and_then(|rest| rest.strip_prefix('='))
        }
    })
}

fn port_of(address: &str) -> &str {
    address.rsplit_once(':').map_or("", |(_, port)| port)
}

/// A container path with `.` and `..` resolved.
fn normalize(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    format!("/{}", parts.join("/"))
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((a.canonicalize(), b.canonicalize()), (Ok(a), Ok(b)) if a == b)
}

#[test]
fn the_compose_stack_parses_every_mount_exists_and_the_services_find_each_other() {
    let problems = Stack::from_checkout().problems();
    assert!(problems.is_empty(), "deploy/compose.yaml:\n{}", problems.join("\n"));
}

/// The check above can fail: each planted mistake is reported, by name.
#[test]
fn a_missing_mount_a_misplaced_rule_file_and_a_wrong_scrape_port_are_each_reported() {
    let whole = Stack::from_checkout();
    let cases = [
        ("./prometheus.yml:/etc", "./prometheus-gone.yml:/etc", None, "prometheus-gone.yml, which does not exist"),
        ("dockerfile: deploy/Dockerfile", "dockerfile: deploy/Nope", None, "deploy/Nope, which does not exist"),
        ("image: redis:7.0", "image: redis:7.2", None, "must be Redis 7.0"),
        ("- esper-state:/var", "- esper-stat:/var", None, "\"esper-stat\" is not declared"),
        ("../ci/grafana/esper.json:", "../ci/grafana/nissa.json:", None, "nissa.json, which does not exist"),
        ("", "", Some(("../ci/prometheus/alert_rules.yml", "alert_rules.yml")), "rule file alert_rules.yml"),
        ("", "", Some(("esper:9100", "esper:9200")), "esper serves Nissa on port Some(\"9100\")"),
        ("services:", "services: [", None, "does not parse"),
    ];
    for (from, to, in_prometheus, expected) in cases {
        let mut stack =
            Stack { dir: whole.dir.clone(), compose: whole.compose.clone(), prometheus: whole.prometheus.clone() };
        if !from.is_empty() {
            assert!(stack.compose.contains(from), "the case plants nothing: {from:?}");
            stack.compose = stack.compose.replacen(from, to, 1);
        }
        if let Some((from, to)) = in_prometheus {
            assert!(stack.prometheus.contains(from), "the case plants nothing: {from:?}");
            stack.prometheus = stack.prometheus.replace(from, to);
        }
        let problems = stack.problems();
        assert!(
            problems.iter().any(|problem| problem.contains(expected)),
            "planting {to:?} for {from:?}: expected {expected:?} in {problems:#?}"
        );
    }
}
