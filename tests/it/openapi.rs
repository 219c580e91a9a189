//! The OpenAPI document: every `/api/v1` route of the router is in it with its method (and
//! nothing that is not a route), it is OpenAPI 3.1 with unique operation ids, declared path
//! parameters and answers for every operation, and the server serves exactly it.

use std::collections::HashSet;

use runtime_policy::api_doc::{operation_id, path_parameters};
use runtime_policy::web::{api_routes, openapi_document};
use serde_json::Value;

use crate::helpers::{self, spawn_app};

fn doc_json() -> Value {
    serde_json::to_value(openapi_document()).unwrap()
}

#[test]
fn every_api_route_is_described_and_every_description_is_a_route() {
    let doc = doc_json();
    let routes: HashSet<(String, String)> = api_routes()
        .into_iter()
        .filter(|(path, _, _)| path.starts_with("/api/v1"))
        .map(|(path, method, _)| (path.to_string(), method.as_str().to_ascii_lowercase()))
        .collect();
    let mut described = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, _) in item.as_object().unwrap() {
            described.insert((path.clone(), method.clone()));
        }
    }
    let missing: Vec<_> = routes.difference(&described).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the OpenAPI document (add a RouteDoc beside the handler): {missing:?}"
    );
    let stale: Vec<_> = described.difference(&routes).collect();
    assert!(stale.is_empty(), "described but not routed: {stale:?}");
}

#[test]
fn the_document_is_openapi_3_1_and_complete() {
    let doc = doc_json();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let mut ids = HashSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with("/api/v1"), "{path}");
        for (method, op) in item.as_object().unwrap() {
            let id = op["operationId"].as_str().unwrap();
            assert!(ids.insert(id.to_string()), "operationId {id} twice");
            let method_ = axum::http::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
            assert_eq!(id, operation_id(&method_, path));
            assert!(!op["responses"].as_object().unwrap().is_empty(), "{method} {path} has no responses");
            for status in op["responses"].as_object().unwrap().keys() {
                assert!(status.len() == 3 && status.parse::<u16>().is_ok(), "{method} {path}: {status}");
            }
            let declared: Vec<&str> = op["parameters"]
                .as_array()
                .map(|ps| ps.iter().filter(|p| p["in"] == "path").map(|p| p["name"].as_str().unwrap()).collect())
                .unwrap_or_default();
            assert_eq!(declared, path_parameters(path), "{method} {path}");
            for req in op["security"].as_array().into_iter().flatten() {
                for name in req.as_object().unwrap().keys() {
                    assert!(schemes.contains_key(name), "{method} {path}: unknown scheme {name}");
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_the_document() {
    let t = helpers::TestDb::new(runtime_policy::config::Backend::Sqlite).await;
    let base = spawn_app(&t).await;
    let res = reqwest::get(format!("{base}{}", runtime_policy::paths::API_OPENAPI)).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let served: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(served, doc_json());
    t.finish().await;
}
