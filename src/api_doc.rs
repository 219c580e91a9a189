//! The OpenAPI 3.1 document of the `/api/v1` routes, built from what each endpoint module says
//! about its routes ([`RouteDoc`], beside the handlers) and served at `/api/v1/openapi.json`.
//! A test compares it with the router's route table, so a route cannot be left out.

use axum::http::Method;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{ComponentsBuilder, InfoBuilder, OpenApi, OpenApiBuilder, PathsBuilder, Required};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A worker token with this scope.
    Worker(&'static str),
    /// A personal API token with this scope, or a superuser's session.
    Api(&'static str),
    /// Either a personal API token / session with policy:read, or a worker token with
    /// policy:read.
    PolicyReader,
    /// A superuser's session (the page's downloads).
    Session,
    /// Anyone: it describes, it holds nothing.
    Public,
}

/// One route, described.
#[derive(Debug, Clone)]
pub struct RouteDoc {
    pub path: &'static str,
    pub method: Method,
    pub summary: &'static str,
    pub caller: Caller,
    /// The request body, when there is one: what it holds.
    pub body: Option<&'static str>,
    /// The answers: status and what it means (errors are `{error, field, status}`).
    pub responses: &'static [(u16, &'static str)],
}

fn http_method(m: &Method) -> HttpMethod {
    match *m {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::PATCH => HttpMethod::Patch,
        Method::HEAD => HttpMethod::Head,
        _ => HttpMethod::Get,
    }
}

/// `getApiV1PolicyKey`-style ids, unique per route and method.
pub fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for part in path.split(['/', '-', '{', '}', '.']).filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            id.push(first.to_ascii_uppercase());
            id.extend(chars);
        }
    }
    id
}

/// The names of a path's `{parameters}`.
pub fn path_parameters(path: &str) -> Vec<&str> {
    path.split('/').filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect()
}

/// The document for `routes`; `choices` lists the values a path parameter may take, by name
/// (the policy keys for `{key}`), so that clients and generated tests know them.
pub fn document(routes: &[RouteDoc], choices: &[(&str, Vec<String>)]) -> OpenApi {
    let error = || {
        ContentBuilder::new()
            .schema(Some(
                ObjectBuilder::new()
                    .property("error", ObjectBuilder::new().schema_type(Type::String))
                    .property("field", ObjectBuilder::new().schema_type(Type::String))
                    .property("status", ObjectBuilder::new().schema_type(Type::Integer))
                    .required("error")
                    .required("status"),
            ))
            .build()
    };
    let any_json = || ContentBuilder::new().schema(Some(ObjectBuilder::new())).build();
    let mut paths = PathsBuilder::new();
    for r in routes {
        let (description, schemes): (String, Vec<&str>) = match r.caller {
            Caller::Worker(scope) => (format!("A worker token with the scope {scope}."), vec!["workerToken"]),
            Caller::Api(scope) => (
                format!("A personal API token with the scope {scope}, or a superuser's session."),
                vec!["apiToken", "session"],
            ),
            Caller::Public => ("Anyone.".into(), vec![]),
            Caller::Session => ("A superuser's session.".into(), vec!["session"]),
            Caller::PolicyReader => (
                "A personal API token or a worker token with the scope policy:read, or a superuser's session.".into(),
                vec!["apiToken", "workerToken", "session"],
            ),
        };
        let mut op = OperationBuilder::new()
            .operation_id(Some(operation_id(&r.method, r.path)))
            .summary(Some(r.summary))
            .description(Some(description));
        for scheme in schemes {
            op = op.security(SecurityRequirement::new::<_, _, &str>(scheme, []));
        }
        for name in path_parameters(r.path) {
            let mut schema = ObjectBuilder::new().schema_type(Type::String);
            if let Some((_, values)) = choices.iter().find(|(n, _)| *n == name) {
                schema = schema.enum_values(Some(values.clone()));
            }
            op = op.parameter(
                ParameterBuilder::new()
                    .name(name)
                    .parameter_in(ParameterIn::Path)
                    .required(Required::True)
                    .schema(Some(schema)),
            );
        }
        if let Some(body) = r.body {
            op = op.request_body(Some(
                RequestBodyBuilder::new()
                    .description(Some(body))
                    .content("application/json", any_json())
                    .required(Some(Required::True))
                    .build(),
            ));
        }
        for (status, what) in r.responses {
            let content = if *status >= 400 { error() } else { any_json() };
            let mut resp = ResponseBuilder::new().description(*what);
            if *status != 304 {
                resp = resp.content("application/json", content);
            }
            op = op.response(status.to_string(), resp.build());
        }
        paths = paths.path(r.path, utoipa::openapi::PathItem::new(http_method(&r.method), op.build()));
    }
    let bearer = |what: &str| {
        SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(what)).build())
    };
    let components = ComponentsBuilder::new()
        .security_scheme(
            "apiToken",
            bearer("A superuser's personal API token (rpa_…): runtime-policy api-token create"),
        )
        .security_scheme("workerToken", bearer("A worker token (rpw_…): runtime-policy token create"))
        .security_scheme(
            "session",
            SecurityScheme::ApiKey(utoipa::openapi::security::ApiKey::Cookie(
                utoipa::openapi::security::ApiKeyValue::with_description(
                    "rp_session",
                    "A superuser's session cookie (__Host-rp_session over HTTPS), from signing in on the web page",
                ),
            )),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Runtime Policy API")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The policy as a versioned resource, change sets and change requests, revisions, the audit log, \
                     config as code, and the worker API. Errors are JSON {error, field, status}.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_parameters_come_from_the_path() {
        assert_eq!(operation_id(&Method::GET, "/api/v1/policy/{key}"), "getApiV1PolicyKey");
        assert_eq!(path_parameters("/api/v1/runs/{id}/blocks/{uid}/complete"), vec!["id", "uid"]);
    }
}
