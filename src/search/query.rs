//! What a search looks for, and its wire form — the same for JSON files, the CLI and the
//! browser (the WASM face deserializes JS values through it): an example is a tile id (a
//! number) or an embedding (an array of numbers); a query is one example, or
//! `{"positives": [...], "negatives": [...]}`.

use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::Serializer;
use serde::{Deserialize, Serialize};

/// One example tile: an embedding from the model, or a tile already in the index.
#[derive(Debug, Clone, PartialEq)]
pub enum Example {
    Vector(Vec<f32>),
    Tile(u32),
}

/// What to look for: at least one positive (the query tile itself), any negatives.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Query {
    pub positives: Vec<Example>,
    pub negatives: Vec<Example>,
}

impl Query {
    /// A query by one embedding.
    pub fn vector(v: Vec<f32>) -> Query {
        Query { positives: vec![Example::Vector(v)], negatives: Vec::new() }
    }
}

impl Serialize for Example {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Example::Vector(v) => v.serialize(s),
            Example::Tile(id) => s.serialize_u32(*id),
        }
    }
}

impl<'de> Deserialize<'de> for Example {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ExampleVisitor)
    }
}

const EXPECTED_EXAMPLE: &str = "a tile id (a non-negative integer) or an embedding (an array of numbers)";

struct ExampleVisitor;

impl<'de> Visitor<'de> for ExampleVisitor {
    type Value = Example;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(EXPECTED_EXAMPLE)
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Example, E> {
        u32::try_from(n).map(Example::Tile).map_err(|_| E::custom(format!("tile id {n} is out of range")))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Example, E> {
        match u64::try_from(n) {
            Ok(n) => self.visit_u64(n),
            Err(_) => Err(E::custom(format!("tile id {n} is not a non-negative integer"))),
        }
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Example, E> {
        if n >= 0.0 && n.fract() == 0.0 && n <= f64::from(u32::MAX) {
            Ok(Example::Tile(n as u32))
        } else {
            Err(E::custom(format!("tile id {n} is not a non-negative integer")))
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Example, A::Error> {
        Vec::<f32>::deserialize(de::value::SeqAccessDeserializer::new(seq)).map(Example::Vector)
    }
}

impl<'de> Deserialize<'de> for Query {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(QueryVisitor)
    }
}

/// The object form; a misspelt field (`positive`) is an error, not an empty query.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueryFields {
    #[serde(default)]
    positives: Vec<Example>,
    #[serde(default)]
    negatives: Vec<Example>,
}

struct QueryVisitor;

impl QueryVisitor {
    fn one<E: de::Error>(example: Result<Example, E>) -> Result<Query, E> {
        Ok(Query { positives: vec![example?], negatives: Vec::new() })
    }
}

impl<'de> Visitor<'de> for QueryVisitor {
    type Value = Query;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{EXPECTED_EXAMPLE}, or {{\"positives\": [...], \"negatives\": [...]}}")
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Query, E> {
        Self::one(ExampleVisitor.visit_u64(n))
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Query, E> {
        Self::one(ExampleVisitor.visit_i64(n))
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Query, E> {
        Self::one(ExampleVisitor.visit_f64(n))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Query, A::Error> {
        Self::one(ExampleVisitor.visit_seq(seq))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Query, A::Error> {
        let QueryFields { positives, negatives } = QueryFields::deserialize(de::value::MapAccessDeserializer::new(map))?;
        Ok(Query { positives, negatives })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_wire_form_is_numbers_arrays_and_the_object() {
        let q: Query = serde_json::from_value(json!(3)).unwrap();
        assert_eq!(q, Query { positives: vec![Example::Tile(3)], negatives: vec![] });
        let q: Query = serde_json::from_value(json!([0.5, -1])).unwrap();
        assert_eq!(q, Query::vector(vec![0.5, -1.0]));
        let q: Query = serde_json::from_value(json!({ "positives": [1, [0.25]], "negatives": [2] })).unwrap();
        assert_eq!(q.positives, vec![Example::Tile(1), Example::Vector(vec![0.25])]);
        assert_eq!(q.negatives, vec![Example::Tile(2)]);
        assert_eq!(serde_json::from_value::<Query>(serde_json::to_value(&q).unwrap()).unwrap(), q, "round trip");
        assert_eq!(serde_json::from_value::<Query>(json!(7.0)).unwrap().positives, vec![Example::Tile(7)]);

        let err = |v: serde_json::Value| serde_json::from_value::<Query>(v).unwrap_err().to_string();
        assert!(err(json!(-1)).contains("tile id -1 is not a non-negative integer"));
        assert!(err(json!(2.5)).contains("tile id 2.5 is not a non-negative integer"));
        assert!(err(json!(1e12)).contains("not a non-negative integer") || err(json!(1e12)).contains("out of range"));
        assert!(err(json!(5_000_000_000u64)).contains("tile id 5000000000 is out of range"));
        assert!(err(json!("a string")).contains("a tile id"), "{}", err(json!("a string")));
        assert!(err(json!({ "positive": [1] })).contains("unknown field `positive`"));
        assert!(err(json!({ "positives": [[1, "x"]] })).contains("invalid type"));
        assert!(serde_json::from_str::<Query>("[1, 2").is_err());
    }
}
