//! The policy: registry, typed values, resolution with provenance and (server side) the
//! audited store.

pub mod api;
pub mod audit;
pub mod registry;
pub mod resolve;
pub mod value;

#[cfg(feature = "ssr")]
pub mod cli;
#[cfg(feature = "ssr")]
pub mod export;
#[cfg(feature = "ssr")]
pub mod server;

#[cfg(test)]
mod tests;

pub use registry::{spec, Control, Kind, KeySpec, Layer, REGISTRY};
pub use resolve::{provenance, Resolved};
pub use value::{PolicyValue, Provider, ValidationError};
