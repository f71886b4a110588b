//! The route table, the types and the generated OpenAPI document agree: every route's example
//! bodies survive JSON and back and conform to the schemas the document publishes.

use std::collections::HashSet;

use airlock_api::{openapi, Operation, Payload, ENDPOINTS};
use serde_json::{Map, Value};

/// Checks `value` against `schema` for what the generated schemas use: `$ref`, `type`
/// (one or several), `enum`, `properties`/`required`/`additionalProperties`, `items`,
/// `oneOf`/`anyOf`/`allOf`. Returns what does not conform, with its path.
fn conform(schemas: &Map<String, Value>, schema: &Value, value: &Value, at: &str) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(name) = schema.get("$ref").and_then(Value::as_str) {
        let name = name.trim_start_matches("#/components/schemas/");
        return match schemas.get(name) {
            Some(target) => conform(schemas, target, value, at),
            None => vec![format!("{at}: refers to undefined schema `{name}`")],
        };
    }
    if let Some(types) = schema.get("type") {
        let allowed: Vec<&str> = match types {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let fits = allowed.iter().any(|t| match *t {
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "array" => value.is_array(),
            "object" => value.is_object(),
            "null" => value.is_null(),
            _ => false,
        });
        if !fits {
            return vec![format!("{at}: {value} is not of type {types}")];
        }
    }
    if let Some(options) = schema.get("enum").and_then(Value::as_array) {
        if !options.contains(value) {
            problems.push(format!("{at}: {value} is not one of {options:?}"));
        }
    }
    if let Some(minimum) = schema.get("minimum").and_then(Value::as_f64) {
        if value.as_f64().is_some_and(|v| v < minimum) {
            problems.push(format!("{at}: {value} is below {minimum}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        for required in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let key = required.as_str().unwrap_or_default();
            if !object.contains_key(key) {
                problems.push(format!("{at}: lacks required `{key}`"));
            }
        }
        for (key, field) in object {
            match properties.and_then(|p| p.get(key)) {
                Some(field_schema) => problems.extend(conform(
                    schemas,
                    field_schema,
                    field,
                    &format!("{at}.{key}"),
                )),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    problems.push(format!("{at}: `{key}` is not in the schema"))
                }
                None => {}
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (i, item) in array.iter().enumerate() {
            problems.extend(conform(schemas, items, item, &format!("{at}[{i}]")));
        }
    }
    for all in schema
        .get("allOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        problems.extend(conform(schemas, all, value, at));
    }
    for (keyword, exactly_one) in [("oneOf", true), ("anyOf", false)] {
        if let Some(options) = schema.get(keyword).and_then(Value::as_array) {
            let fitting = options
                .iter()
                .filter(|option| conform(schemas, option, value, at).is_empty())
                .count();
            if fitting == 0 || (exactly_one && fitting > 1) {
                problems.push(format!(
                    "{at}: {value} fits {fitting} of the {keyword} options"
                ));
            }
        }
    }
    problems
}

/// The schema a route's document gives for the body in `content`.
fn body_schema(content: &Value) -> &Value {
    &content["application/json"]["schema"]
}

#[test]
fn every_route_example_round_trips_and_conforms_to_the_document() {
    let document = openapi::document();
    let schemas = document["components"]["schemas"]
        .as_object()
        .unwrap()
        .clone();
    let mut checked = 0;
    for e in ENDPOINTS {
        let operation = &document["paths"][e.path][e.method.as_str().to_lowercase()];
        if let Some(Payload::Json(ty)) = &e.request {
            let example =
                (ty.example)().unwrap_or_else(|err| panic!("{}: {err}", e.operation_id()));
            let schema = body_schema(&operation["requestBody"]["content"]);
            let problems = conform(&schemas, schema, &example, "request");
            assert!(problems.is_empty(), "{}: {problems:?}", e.operation_id());
            checked += 1;
        }
        if let Some(Payload::Json(ty)) = &e.response {
            let example = if e.paged {
                (ty.page_example)()
            } else {
                (ty.example)()
            }
            .unwrap_or_else(|err| panic!("{}: {err}", e.operation_id()));
            let schema = body_schema(&operation["responses"][e.status.to_string()]["content"]);
            let problems = conform(&schemas, schema, &example, "response");
            assert!(problems.is_empty(), "{}: {problems:?}", e.operation_id());
            checked += 1;
        }
    }
    assert!(checked > ENDPOINTS.len(), "only {checked} bodies checked");
}

#[test]
fn the_validator_refuses_what_does_not_conform() {
    let document = openapi::document();
    let schemas = document["components"]["schemas"]
        .as_object()
        .unwrap()
        .clone();
    let user = serde_json::json!({ "$ref": "#/components/schemas/User" });
    let good =
        serde_json::to_value(<airlock_api::User as airlock_api::examples::Example>::example())
            .unwrap();
    assert!(conform(&schemas, &user, &good, "user").is_empty());
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("email");
    assert!(!conform(&schemas, &user, &missing, "user").is_empty());
    let mut wrong_role = good.clone();
    wrong_role["role"] = "janitor".into();
    assert!(!conform(&schemas, &user, &wrong_role, "user").is_empty());
    let mut wrong_type = good;
    wrong_type["disabled"] = "no".into();
    assert!(!conform(&schemas, &user, &wrong_type, "user").is_empty());
}

#[test]
fn every_operation_has_exactly_one_route() {
    let mut seen = HashSet::new();
    for e in ENDPOINTS {
        assert!(
            seen.insert(e.operation),
            "{:?} is in the table twice",
            e.operation
        );
    }
    for op in Operation::ALL {
        assert!(seen.contains(&op), "{op:?} has no route");
    }
    let routes: HashSet<_> = ENDPOINTS.iter().map(|e| (e.method, e.path)).collect();
    assert_eq!(
        routes.len(),
        ENDPOINTS.len(),
        "two routes share a method and path"
    );
}

#[test]
fn every_referenced_schema_is_defined() {
    let document = openapi::document();
    let text = document.to_string();
    let schemas = document["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"#/components/schemas/").skip(1) {
        let name = &reference[..reference.find('"').unwrap()];
        assert!(
            schemas.contains_key(name),
            "`{name}` is referred to but not defined"
        );
    }
}
