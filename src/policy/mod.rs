//! The policy, the model of the product: the registry of keys, typed values, resolution with
//! provenance, audit types and (server side) the audited store and its CLI. It imports
//! nothing from the pages, the runs or the web layer.

pub mod audit;
pub mod change_set;
pub mod parse;
pub mod registry;
pub mod resolve;
pub mod value;

#[cfg(feature = "ssr")]
pub mod cache;
#[cfg(feature = "ssr")]
pub mod cli;
#[cfg(feature = "ssr")]
pub mod docs;
#[cfg(feature = "ssr")]
pub mod instances;
#[cfg(feature = "ssr")]
pub mod review;
#[cfg(feature = "ssr")]
pub mod store;
#[cfg(feature = "ssr")]
pub mod webhooks;

#[cfg(test)]
mod tests;

pub use registry::{keys, spec, Category, Control, KeySpec, Kind, Layer, REGISTRY};
pub use resolve::{provenance, Resolved};
pub use value::{PolicyValue, Provider, ValidationError};
