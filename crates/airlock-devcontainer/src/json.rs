//! Reading JSON with comments into typed values, naming the property path on every error.
//!
//! `jsonc-parser` keeps object keys in file order (the order of `features` matters) and gives
//! line and column for syntax errors; the typed walk below turns wrong types into errors that
//! name the property (`forwardPorts[1]`), which serde's derive could not do as plainly.

use std::collections::BTreeMap;

use jsonc_parser::{JsonObject, JsonValue, ParseOptions};

use crate::DevcontainerError;

/// Largest devcontainer.json or devcontainer-feature.json read: real ones are a few KiB.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// Parses `text` as JSON with comments and trailing commas (nothing looser: single quotes,
/// hex numbers and bare keys are refused as VS Code refuses them) into a top-level object.
pub(crate) fn parse_object<'a>(
    text: &'a str,
    origin: &str,
) -> Result<JsonObject<'a>, DevcontainerError> {
    if text.len() > MAX_FILE_BYTES {
        return Err(DevcontainerError::TooLarge {
            origin: origin.to_string(),
            size: text.len(),
            limit: MAX_FILE_BYTES,
        });
    }
    let options = ParseOptions {
        allow_comments: true,
        allow_trailing_commas: true,
        allow_loose_object_property_names: false,
        allow_missing_commas: false,
        allow_single_quoted_strings: false,
        allow_hexadecimal_numbers: false,
        allow_unary_plus_numbers: false,
        allow_bare_decimal_point_numbers: false,
        allow_non_finite_numbers: false,
        allow_extended_string_escapes: false,
    };
    let value =
        jsonc_parser::parse_to_value(text, &options).map_err(|e| DevcontainerError::Syntax {
            origin: origin.to_string(),
            line: e.line_display(),
            column: e.column_display(),
            message: e.kind().to_string(),
        })?;
    match value {
        Some(JsonValue::Object(object)) => Ok(object),
        Some(other) => Err(DevcontainerError::WrongType {
            origin: origin.to_string(),
            property: "(top level)".to_string(),
            expected: "an object",
            found: kind(&other),
        }),
        None => Err(DevcontainerError::InvalidValue {
            origin: origin.to_string(),
            property: "(top level)".to_string(),
            message: "the file is empty (it must hold a JSON object)".to_string(),
        }),
    }
}

pub(crate) fn kind(value: &JsonValue<'_>) -> &'static str {
    match value {
        JsonValue::String(_) => "a string",
        JsonValue::Number(_) => "a number",
        JsonValue::Boolean(_) => "a boolean",
        JsonValue::Object(_) => "an object",
        JsonValue::Array(_) => "an array",
        JsonValue::Null => "null",
    }
}

/// The typed walk over one file: knows the file's name for errors.
pub(crate) struct Reader<'o> {
    pub origin: &'o str,
}

impl Reader<'_> {
    pub fn wrong(
        &self,
        property: &str,
        expected: &'static str,
        value: &JsonValue<'_>,
    ) -> DevcontainerError {
        DevcontainerError::WrongType {
            origin: self.origin.to_string(),
            property: property.to_string(),
            expected,
            found: kind(value),
        }
    }

    pub fn invalid(&self, property: &str, message: impl Into<String>) -> DevcontainerError {
        DevcontainerError::InvalidValue {
            origin: self.origin.to_string(),
            property: property.to_string(),
            message: message.into(),
        }
    }

    pub fn string(
        &self,
        property: &str,
        value: JsonValue<'_>,
    ) -> Result<String, DevcontainerError> {
        match value {
            JsonValue::String(s) => Ok(s.into_owned()),
            other => Err(self.wrong(property, "a string", &other)),
        }
    }

    pub fn boolean(&self, property: &str, value: JsonValue<'_>) -> Result<bool, DevcontainerError> {
        match value {
            JsonValue::Boolean(b) => Ok(b),
            other => Err(self.wrong(property, "true or false", &other)),
        }
    }

    pub fn object<'a>(
        &self,
        property: &str,
        value: JsonValue<'a>,
    ) -> Result<JsonObject<'a>, DevcontainerError> {
        match value {
            JsonValue::Object(o) => Ok(o),
            other => Err(self.wrong(property, "an object", &other)),
        }
    }

    pub fn strings(
        &self,
        property: &str,
        value: JsonValue<'_>,
    ) -> Result<Vec<String>, DevcontainerError> {
        match value {
            JsonValue::Array(items) => items
                .take_inner()
                .into_iter()
                .enumerate()
                .map(|(i, item)| self.string(&format!("{property}[{i}]"), item))
                .collect(),
            other => Err(self.wrong(property, "an array of strings", &other)),
        }
    }

    /// `{ "NAME": "value" }`.
    pub fn string_map(
        &self,
        property: &str,
        value: JsonValue<'_>,
    ) -> Result<BTreeMap<String, String>, DevcontainerError> {
        let mut map = BTreeMap::new();
        for (key, item) in self.object(property, value)? {
            let value = self.string(&format!("{property}.{key}"), item)?;
            map.insert(key.into_owned(), value);
        }
        Ok(map)
    }

    /// A non-negative integer that fits `u64` (JSON numbers like `4` or `4.0` are not mixed up).
    pub fn unsigned(&self, property: &str, value: JsonValue<'_>) -> Result<u64, DevcontainerError> {
        match value {
            JsonValue::Number(n) => n.parse::<u64>().map_err(|_| {
                self.invalid(
                    property,
                    format!("`{n}` is not a whole non-negative number"),
                )
            }),
            other => Err(self.wrong(property, "a number", &other)),
        }
    }
}

/// Any JSON value as serde_json's (for pass-through maps such as VS Code settings).
pub(crate) fn to_serde(value: JsonValue<'_>) -> serde_json::Value {
    use serde_json::Value;
    match value {
        JsonValue::String(s) => Value::String(s.into_owned()),
        // The parser only accepts plain JSON numbers here (loose forms are off), which
        // serde_json reads; anything else would have been a syntax error already.
        JsonValue::Number(n) => n
            .parse::<serde_json::Number>()
            .map(Value::Number)
            .unwrap_or(Value::Null),
        JsonValue::Boolean(b) => Value::Bool(b),
        JsonValue::Null => Value::Null,
        JsonValue::Array(items) => {
            Value::Array(items.take_inner().into_iter().map(to_serde).collect())
        }
        JsonValue::Object(object) => Value::Object(
            object
                .into_iter()
                .map(|(k, v)| (k.into_owned(), to_serde(v)))
                .collect(),
        ),
    }
}
