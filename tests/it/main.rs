//! The integration tests, one binary: each module is a feature's tests, on SQLite and (with
//! `TEST_POSTGRES_URL`) PostgreSQL, through the real router, the real binary or a real server
//! on 127.0.0.1.
#![cfg(feature = "ssr")]

#[macro_use]
mod helpers;

mod auth;
mod batches;
mod change_sets;
mod cli;
mod layers;
mod openapi;
mod policy_api;
mod policy_store;
mod runs;
mod skeleton;
mod uploads;
mod webhooks;
mod worker_client;
