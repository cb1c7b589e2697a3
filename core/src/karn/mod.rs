//! Karn, the blueprint catalog: which adaptations exist, how big and how risky
//! each is, and which lifecycle stages a seed built from it may enter.
//!
//! The catalog is data, not code: [`Catalog::default_catalog`] parses
//! `blueprints.json` (compiled into the binary), so the 50 blueprints of
//! Esper-Lite's Karn — SAFE BP001–BP035 (risk ≤ 0.5), EXPERIMENTAL BP036–BP042
//! (0.7–0.8, approval), HIGH_RISK BP043–BP050 (0.9–1.0, quarantine and approval)
//! — can be read and reviewed as a table. Tezzeret compiles every blueprint of the
//! catalog into a kernel, Urza keeps the kernels with their metadata, Tamiyo reads
//! the metadata before germinating. A catalog that breaks one of its rules is
//! refused with a [`KarnError`] naming the blueprint and the rule.

mod catalog;

pub use catalog::{Blueprint, Catalog, KarnError, ModuleShape, ParameterRange};
