//! Protocol sensitivity sweeps: the knobs a source leaves open, and the values to try.
//!
//! A protocol entry may carry `sweep: {knob: [value, ...], ...}`. The audit evaluates the
//! protocol as written plus every other setting of the Cartesian product of the listed values;
//! [`expand`] lists those other settings. Every value goes through the protocol's own types (the
//! spec is serialized to JSON, the knobs set, and the result deserialized back), so a sweep
//! accepts exactly what the protocol fields accept and nothing is listed twice.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use super::{ProtocolEntry, ProtocolSpec};

/// The most settings one sweep may have (the product of its value counts, the protocol as
/// written included): a guard against an accidental explosion of evaluations.
pub const MAX_COMBINATIONS: usize = 64;

/// The knobs of a sweep in the order written, each with the values to try.
///
/// In YAML a mapping `{knob: [value, ...], ...}`; knobs are the fields of the protocol's kind
/// (`resize`, `crop`, `interpolation`, `antialias`, ...) and values are written as the field is.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sweep {
    pub knobs: Vec<SweepKnob>,
}

/// One swept knob: a field of the protocol's spec and the values to try for it.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepKnob {
    pub name: String,
    pub values: Vec<Value>,
}

/// One setting of a protocol's sweep other than the protocol as written: a protocol of its own,
/// evaluated and stored beside the written one.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepVariant {
    /// The id of the protocol as written that this setting varies.
    pub protocol: String,
    /// 1-based position among the protocol's other settings, in [`expand`]'s order.
    pub index: usize,
    /// The swept knobs' values in knob order.
    pub knobs: Vec<(String, Value)>,
    /// The protocol with those values set.
    pub spec: ProtocolSpec,
}

/// Between a protocol's id and a setting's index in the variant's id.
const VARIANT_SEPARATOR: &str = ".sweep";

impl SweepVariant {
    /// The id the variant is evaluated, stored and tabulated under: `<protocol>.sweep<index>`.
    /// Store file names contain it, so its form is fixed: results stored before keep their names.
    pub fn id(&self) -> String {
        format!("{}{VARIANT_SEPARATOR}{}", self.protocol, self.index)
    }

    /// The setting in words, the knobs in order: `interpolation=bicubic, antialias=false`.
    pub fn label(&self) -> String {
        self.knobs.iter().map(|(name, value)| format!("{name}={}", flow(value))).collect::<Vec<_>>().join(", ")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SweepError {
    #[error("protocol `{protocol}`: an ensemble cannot be swept (sweep the protocols of its members instead)")]
    Ensemble { protocol: String },
    #[error("protocol `{protocol}`: `sweep` names no knobs (remove it, or list knobs with the values to try)")]
    NoKnobs { protocol: String },
    #[error("protocol `{protocol}`: sweep knob `{knob}` is not a field of {kind}; its knobs are: {valid}")]
    UnknownKnob { protocol: String, knob: String, kind: String, valid: String },
    #[error("protocol `{protocol}`: sweep knob `{knob}` is listed twice")]
    DuplicateKnob { protocol: String, knob: String },
    #[error("protocol `{protocol}`: sweep knob `{knob}` lists no values")]
    NoValues { protocol: String, knob: String },
    #[error("protocol `{protocol}`: sweep knob `{knob}` lists the value {value} twice")]
    DuplicateValue { protocol: String, knob: String, value: String },
    #[error("protocol `{protocol}`: sweep knob `{knob}` has a bad value {value}: {reason}")]
    BadValue { protocol: String, knob: String, value: String, reason: String },
    #[error(
        "protocol `{protocol}`: the sweep has {count} combinations ({knobs}), more than the limit of \
         {MAX_COMBINATIONS}, a guard against accidental explosions; split it into several protocols"
    )]
    TooMany { protocol: String, count: String, knobs: String },
    #[error("protocol `{protocol}`: sweep setting {label} is not a valid protocol: {reason}")]
    BadSetting { protocol: String, label: String, reason: String },
    #[error("protocol `{protocol}`: cannot represent the protocol as fields to sweep: {reason}")]
    Spec { protocol: String, reason: String },
}

/// The settings of `entry`'s sweep other than the protocol as written, in order: the first
/// knob varies slowest, each knob's values in the order listed. Empty without a sweep.
pub fn expand(entry: &ProtocolEntry) -> Result<Vec<SweepVariant>, SweepError> {
    let Some(sweep) = &entry.sweep else { return Ok(Vec::new()) };
    let protocol = || entry.id.clone();
    if matches!(entry.spec, ProtocolSpec::Ensemble(_)) {
        return Err(SweepError::Ensemble { protocol: protocol() });
    }
    if sweep.knobs.is_empty() {
        return Err(SweepError::NoKnobs { protocol: protocol() });
    }
    let written = spec_fields(entry)?;
    let kind = written.get("kind").and_then(Value::as_str).unwrap_or("this protocol kind").to_string();

    // Knob names first (a misspelt knob is the likeliest mistake), then each value on its own
    // against the written protocol, so that an error names exactly one knob and value.
    for (i, knob) in sweep.knobs.iter().enumerate() {
        if knob.name == "kind" || !written.contains_key(&knob.name) {
            let mut valid: Vec<&str> = written.keys().map(String::as_str).filter(|k| *k != "kind").collect();
            valid.sort_unstable();
            return Err(SweepError::UnknownKnob {
                protocol: protocol(),
                knob: knob.name.clone(),
                kind,
                valid: valid.join(", "),
            });
        }
        if sweep.knobs[..i].iter().any(|k| k.name == knob.name) {
            return Err(SweepError::DuplicateKnob { protocol: protocol(), knob: knob.name.clone() });
        }
        if knob.values.is_empty() {
            return Err(SweepError::NoValues { protocol: protocol(), knob: knob.name.clone() });
        }
    }
    for knob in &sweep.knobs {
        let mut seen: Vec<ProtocolSpec> = Vec::with_capacity(knob.values.len());
        for value in &knob.values {
            let mut fields = written.clone();
            fields.insert(knob.name.clone(), value.clone());
            let spec = from_fields(fields).map_err(|reason| SweepError::BadValue {
                protocol: protocol(),
                knob: knob.name.clone(),
                value: flow(value),
                reason,
            })?;
            // Compared as parsed, so two spellings of one value count as the same value.
            if seen.contains(&spec) {
                return Err(SweepError::DuplicateValue {
                    protocol: protocol(),
                    knob: knob.name.clone(),
                    value: flow(value),
                });
            }
            seen.push(spec);
        }
    }

    let count = sweep.knobs.iter().try_fold(1usize, |n, k| n.checked_mul(k.values.len()));
    if count.is_none_or(|n| n > MAX_COMBINATIONS) {
        let knobs: Vec<String> = sweep.knobs.iter().map(|k| format!("{}: {}", k.name, k.values.len())).collect();
        return Err(SweepError::TooMany {
            protocol: protocol(),
            count: count.map_or_else(|| "too many".to_string(), |n| n.to_string()),
            knobs: knobs.join(" × "),
        });
    }

    let mut variants: Vec<SweepVariant> = Vec::new();
    let mut index = vec![0usize; sweep.knobs.len()];
    loop {
        let mut fields = written.clone();
        let mut knobs = Vec::with_capacity(sweep.knobs.len());
        for (knob, &i) in sweep.knobs.iter().zip(&index) {
            let value = &knob.values[i];
            fields.insert(knob.name.clone(), value.clone());
            knobs.push((knob.name.clone(), value.clone()));
        }
        let variant = SweepVariant { protocol: protocol(), index: variants.len() + 1, knobs, spec: entry.spec.clone() };
        let spec = from_fields(fields).map_err(|reason| SweepError::BadSetting {
            protocol: protocol(),
            label: variant.label(),
            reason,
        })?;
        if spec != entry.spec {
            variants.push(SweepVariant { spec, ..variant });
        }
        // Odometer step: the last knob turns fastest.
        let mut k = index.len();
        loop {
            if k == 0 {
                return Ok(variants);
            }
            k -= 1;
            index[k] += 1;
            if index[k] < sweep.knobs[k].values.len() {
                break;
            }
            index[k] = 0;
        }
    }
}

/// The written spec as a JSON object: `kind` and one key per field.
fn spec_fields(entry: &ProtocolEntry) -> Result<serde_json::Map<String, Value>, SweepError> {
    match serde_json::to_value(&entry.spec) {
        Ok(Value::Object(fields)) => Ok(fields),
        Ok(other) => Err(SweepError::Spec { protocol: entry.id.clone(), reason: format!("not an object: {other}") }),
        Err(e) => Err(SweepError::Spec { protocol: entry.id.clone(), reason: e.to_string() }),
    }
}

fn from_fields(fields: serde_json::Map<String, Value>) -> Result<ProtocolSpec, String> {
    serde_json::from_value(Value::Object(fields)).map_err(|e| e.to_string())
}

/// A value as written in YAML's flow style (`bicubic`, `{shorter-side: 256}`, `[224, 256]`).
fn flow(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => {
            let plain = !s.is_empty()
                && s.chars().all(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.'))
                && serde_json::from_str::<Value>(s).is_err();
            if plain {
                s.clone()
            } else {
                Value::String(s.clone()).to_string()
            }
        }
        Value::Array(items) => format!("[{}]", items.iter().map(flow).collect::<Vec<_>>().join(", ")),
        Value::Object(fields) => {
            let fields: Vec<String> = fields.iter().map(|(k, v)| format!("{k}: {}", flow(v))).collect();
            format!("{{{}}}", fields.join(", "))
        }
    }
}

impl Serialize for Sweep {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.knobs.len()))?;
        for knob in &self.knobs {
            map.serialize_entry(&knob.name, &knob.values)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Sweep {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SweepVisitor;
        impl<'de> Visitor<'de> for SweepVisitor {
            type Value = Sweep;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map from knob names to lists of values, e.g. {interpolation: [bilinear, bicubic]}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sweep, A::Error> {
                let mut knobs: Vec<SweepKnob> = Vec::new();
                while let Some(name) = map.next_key::<String>()? {
                    if knobs.iter().any(|k| k.name == name) {
                        return Err(serde::de::Error::custom(format!("sweep knob `{name}` is listed twice")));
                    }
                    let values = match map.next_value::<Value>()? {
                        Value::Array(values) => values,
                        other => {
                            return Err(serde::de::Error::custom(format!(
                                "sweep knob `{name}` needs a list of values to try, e.g. [{}], not {}",
                                flow(&other),
                                flow(&other)
                            )))
                        }
                    };
                    knobs.push(SweepKnob { name, values });
                }
                Ok(Sweep { knobs })
            }
        }
        deserializer.deserialize_map(SweepVisitor)
    }
}
