//! The catalog's types, its JSON form and the rules a catalog must keep.

use std::collections::BTreeMap;

use crate::leyline::{BlueprintTier, SeedLifecycleStage};

/// The default catalog (see the module docs of [`crate::karn`]).
const DEFAULT_CATALOG_JSON: &str = include_str!("blueprints.json");

/// The blueprint's module: a dense layer `inputs → outputs` with a bias, which is
/// what Tezzeret builds and runs on a device when it compiles the blueprint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleShape {
    pub inputs: usize,
    pub outputs: usize,
}

impl ModuleShape {
    /// Weights and biases of the module.
    pub fn parameter_count(self) -> u64 {
        (self.inputs as u64).saturating_mul(self.outputs as u64).saturating_add(self.outputs as u64)
    }
}

/// Bounds of one tunable parameter (Leyline's `BlueprintParameterBounds`).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParameterRange {
    pub min_value: f64,
    pub max_value: f64,
}

/// One blueprint (Leyline's `BlueprintDescriptor`, plus its module shape).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Blueprint {
    /// `BP001`…
    pub blueprint_id: String,
    pub name: String,
    pub tier: BlueprintTier,
    /// Karn's risk score in [0, 1].
    pub risk: f32,
    pub module: ModuleShape,
    /// Stated by the catalog and checked against `module`.
    pub parameter_count: u64,
    /// Lifecycle stages a seed of this blueprint may enter.
    pub allowed_stages: Vec<SeedLifecycleStage>,
    /// May only run quarantined.
    pub quarantine_only: bool,
    pub approval_required: bool,
    /// Tunable parameters (Tamiyo's germination `alpha`, …) and their bounds.
    #[serde(default)]
    pub allowed_parameters: BTreeMap<String, ParameterRange>,
}

impl Blueprint {
    /// Whether a seed of this blueprint may enter `stage`.
    pub fn allows(&self, stage: SeedLifecycleStage) -> bool {
        self.allowed_stages.contains(&stage)
    }
}

/// The catalog file's shape.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    catalog_version: String,
    blueprints: Vec<Blueprint>,
}

/// A catalog that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KarnError {
    /// Not JSON of the catalog's shape (serde's message names line and column).
    #[error("blueprint catalog is not valid catalog JSON: {0}")]
    Parse(#[from] serde_json::Error),
    /// A blueprint breaks one of the catalog's rules.
    #[error("blueprint `{blueprint_id}` in the catalog is invalid: {reason}")]
    Invalid { blueprint_id: String, reason: String },
    /// The catalog holds no blueprint.
    #[error("blueprint catalog `{catalog_version}` is empty")]
    Empty { catalog_version: String },
}

/// The blueprints by id, validated. See the module docs of [`crate::karn`].
#[derive(Debug, Clone, PartialEq)]
pub struct Catalog {
    version: String,
    blueprints: BTreeMap<String, Blueprint>,
}

impl Catalog {
    /// The catalog shipped with Esper (`core/src/karn/blueprints.json`).
    ///
    /// # Panics
    /// If the shipped file is invalid — a build defect that the unit tests catch.
    pub fn default_catalog() -> Self {
        match Self::parse(DEFAULT_CATALOG_JSON) {
            Ok(catalog) => catalog,
            Err(error) => panic!("the shipped blueprint catalog is invalid: {error}"),
        }
    }

    /// Parses and validates a catalog in its JSON form.
    pub fn parse(json: &str) -> Result<Self, KarnError> {
        let file: CatalogFile = serde_json::from_str(json)?;
        Self::new(file.catalog_version, file.blueprints)
    }

    /// A catalog of `blueprints`, validated.
    pub fn new(version: String, blueprints: Vec<Blueprint>) -> Result<Self, KarnError> {
        if blueprints.is_empty() {
            return Err(KarnError::Empty { catalog_version: version });
        }
        let mut by_id = BTreeMap::new();
        for blueprint in blueprints {
            validate(&blueprint)?;
            let id = blueprint.blueprint_id.clone();
            if by_id.insert(id.clone(), blueprint).is_some() {
                return Err(invalid(&id, "the id appears twice"));
            }
        }
        Ok(Self { version, blueprints: by_id })
    }

    /// The catalog's version (`karn-v1`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The blueprint `blueprint_id`, if the catalog has it.
    pub fn get(&self, blueprint_id: &str) -> Option<&Blueprint> {
        self.blueprints.get(blueprint_id)
    }

    /// Every blueprint, by id.
    pub fn iter(&self) -> impl Iterator<Item = &Blueprint> {
        self.blueprints.values()
    }

    /// Number of blueprints.
    pub fn len(&self) -> usize {
        self.blueprints.len()
    }

    /// Always false: a catalog holds at least one blueprint.
    pub fn is_empty(&self) -> bool {
        self.blueprints.is_empty()
    }
}

fn invalid(blueprint_id: &str, reason: impl Into<String>) -> KarnError {
    KarnError::Invalid { blueprint_id: blueprint_id.to_owned(), reason: reason.into() }
}

/// The rules every blueprint keeps; the first one broken is reported.
fn validate(blueprint: &Blueprint) -> Result<(), KarnError> {
    let id = blueprint.blueprint_id.as_str();
    let fail = |reason: String| Err(invalid(id, reason));
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        return fail("ids are non-empty and use only ASCII letters, digits, `_` and `-`".to_owned());
    }
    if !(0.0..=1.0).contains(&blueprint.risk) {
        return fail(format!("risk {} is outside [0, 1]", blueprint.risk));
    }
    if blueprint.module.inputs == 0 || blueprint.module.outputs < 2 {
        return fail(format!("module {:?} needs at least 1 input and 2 outputs", blueprint.module));
    }
    if blueprint.module.parameter_count() != blueprint.parameter_count {
        return fail(format!(
            "parameter_count {} does not match its {}→{} module ({} parameters)",
            blueprint.parameter_count,
            blueprint.module.inputs,
            blueprint.module.outputs,
            blueprint.module.parameter_count()
        ));
    }
    if blueprint.tier == BlueprintTier::Unspecified {
        return fail("tier is unspecified".to_owned());
    }
    if blueprint.tier != BlueprintTier::Safe && !blueprint.approval_required {
        return fail(format!("{} blueprints require approval", blueprint.tier));
    }
    if blueprint.tier == BlueprintTier::HighRisk && !blueprint.quarantine_only {
        return fail("HIGH_RISK blueprints run quarantined only".to_owned());
    }
    if blueprint.allowed_stages.is_empty() || blueprint.allowed_stages.contains(&SeedLifecycleStage::Unknown) {
        return fail("allowed_stages must name at least one known stage".to_owned());
    }
    if let Some((name, range)) = blueprint
        .allowed_parameters
        .iter()
        .find(|(_, r)| r.min_value.is_nan() || r.max_value.is_nan() || r.min_value > r.max_value)
    {
        return fail(format!("parameter `{name}` has min {} above max {}", range.min_value, range.max_value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_catalog_has_esper_lites_fifty_blueprints_in_three_tiers() {
        let catalog = Catalog::default_catalog();
        assert_eq!(catalog.len(), 50);
        let tier_of = |n: u32| catalog.get(&format!("BP{n:03}")).map(|b| b.tier);
        assert!((1..=35).all(|n| tier_of(n) == Some(BlueprintTier::Safe)));
        assert!((36..=42).all(|n| tier_of(n) == Some(BlueprintTier::Experimental)));
        assert!((43..=50).all(|n| tier_of(n) == Some(BlueprintTier::HighRisk)));
        for blueprint in catalog.iter() {
            let band = match blueprint.tier {
                BlueprintTier::Safe => 0.0..=0.5,
                BlueprintTier::Experimental => 0.7..=0.8,
                _ => 0.9..=1.0,
            };
            assert!(band.contains(&blueprint.risk), "{}: risk {}", blueprint.blueprint_id, blueprint.risk);
        }
        let identity = catalog.get("BP001").expect("BP001");
        assert_eq!((identity.name.as_str(), identity.risk), ("identity_passthrough", 0.0));
        assert!(identity.allows(SeedLifecycleStage::Fossilized));
        assert!(!catalog.get("BP043").expect("BP043").allows(SeedLifecycleStage::Fossilized));
    }

    /// Each broken rule is refused with a message that names it.
    #[test]
    fn refuses_broken_catalogs_with_the_rule_they_break() {
        let good = serde_json::to_value(Catalog::default_catalog().get("BP043").expect("BP043")).expect("json");
        let with = |field: &str, value: serde_json::Value| {
            let mut blueprint = good.clone();
            blueprint[field] = value;
            serde_json::json!({"catalog_version": "t", "blueprints": [blueprint]}).to_string()
        };
        let cases = [
            (with("risk", 1.5.into()), "outside [0, 1]"),
            (with("parameter_count", 7.into()), "does not match"),
            (with("quarantine_only", false.into()), "quarantined only"),
            (with("approval_required", false.into()), "require approval"),
            (with("allowed_stages", serde_json::json!([])), "allowed_stages"),
            (with("tier", "BLUEPRINT_TIER_SIDEWAYS".into()), "unknown variant"),
            (with("blueprint_id", "BP 1".into()), "ids are non-empty"),
            (with("colour", "red".into()), "unknown field"),
            (r#"{"catalog_version": "t", "blueprints": []}"#.to_owned(), "is empty"),
            ("{not json".to_owned(), "not valid catalog JSON"),
        ];
        for (json, expected) in cases {
            let error = Catalog::parse(&json).expect_err(expected).to_string();
            assert!(error.contains(expected), "{expected}: {error}");
        }
        let twice = serde_json::json!({"catalog_version": "t", "blueprints": [good.clone(), good]}).to_string();
        assert!(Catalog::parse(&twice).expect_err("duplicate").to_string().contains("appears twice"));
    }
}
