//! Tamiyo, the strategic controller: policy, risk engine, field reports.
//!
//! So far only the persistence of field reports ([`field_reports`]) lives here.

pub mod field_reports;
