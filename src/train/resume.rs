//! Resuming a run only under the recipe it was started with.
//!
//! A checkpoint records its recipe (JSON) and the recipe's SHA-256. Resuming under a recipe that
//! would have computed the steps already taken differently mixes two runs into one set of
//! weights, so it is an error naming the fields that differ, unless the user allows it; the
//! earlier recipe is then recorded in the checkpoint and the final weights beside the new one.

use std::fmt;
use std::path::Path;

use serde_json::Value;

use super::checkpoint::TrainState;
use super::run::TrainError;

/// What `train` does with a checkpoint it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resume {
    /// Start from step 0 whatever is there.
    Fresh,
    /// Continue from the checkpoint, if there is one, when its recipe is this recipe.
    SameRecipe,
    /// Continue from the checkpoint under this recipe even if it differs (recording both).
    AllowRecipeChange,
}

/// One field the checkpoint's recipe and the current recipe disagree on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecipeChange {
    /// The field's path in the recipe, e.g. `schedule.base` or `augment[1].brightness`.
    pub field: String,
    pub before: String,
    pub after: String,
}

impl fmt::Display for RecipeChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {} -> {}", self.field, self.before, self.after)
    }
}

pub fn sha256(text: &str) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(text.as_bytes()))
}

/// Fields that change nothing already computed: words, and how often checkpoints are written.
/// `epochs` is judged apart: a run may be lengthened (no schedule reads `epochs`, so the
/// first steps of a longer run are the shorter run's), not shortened below where it stands.
const HARMLESS: [&str; 2] = ["description", "checkpoint_every"];

/// Every leaf of a JSON value with its path (`a.b`, `a[2].c`).
fn leaves(value: &Value, path: String, out: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                let inner_path = if path.is_empty() { key.clone() } else { format!("{path}.{key}") };
                leaves(inner, inner_path, out);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                leaves(inner, format!("{path}[{i}]"), out);
            }
            if items.is_empty() {
                out.push((path, value.clone()));
            }
        }
        other => out.push((path, other.clone())),
    }
}

/// The fields in which `current` would have trained the `steps_done` steps of `recorded`
/// differently (both recipes as JSON); `total_steps` is the current recipe's length.
pub fn differences(recorded: &str, current: &str, steps_done: u64, total_steps: u64) -> Vec<RecipeChange> {
    let parse = |text: &str| serde_json::from_str::<Value>(text).unwrap_or(Value::String(text.to_string()));
    let (mut before, mut after) = (Vec::new(), Vec::new());
    leaves(&parse(recorded), String::new(), &mut before);
    leaves(&parse(current), String::new(), &mut after);
    let before: std::collections::BTreeMap<String, Value> = before.into_iter().collect();
    let after: std::collections::BTreeMap<String, Value> = after.into_iter().collect();
    let absent = || "(absent)".to_string();
    let mut fields: Vec<&String> = before.keys().chain(after.keys()).collect();
    fields.sort();
    fields.dedup();
    fields
        .into_iter()
        .filter(|field| !HARMLESS.contains(&field.as_str()))
        .filter(|field| field.as_str() != "epochs" || steps_done > total_steps)
        .filter(|field| before.get(*field) != after.get(*field))
        .map(|field| RecipeChange {
            field: field.clone(),
            before: before.get(field).map_or_else(absent, Value::to_string),
            after: after.get(field).map_or_else(absent, Value::to_string),
        })
        .collect()
}

/// Decides whether the run in `state` may continue under `current` (JSON), and returns the
/// earlier recipes to record from now on.
pub fn check(
    state: &TrainState,
    current: &str,
    resume: Resume,
    checkpoint: &Path,
    total_steps: u64,
) -> Result<Vec<String>, TrainError> {
    let mut earlier = state.earlier_recipes.clone();
    let Some(recorded) = &state.recipe else {
        eprintln!(
            "warning: {} records no recipe (written by an earlier version); it cannot be compared with this one",
            checkpoint.display()
        );
        return Ok(earlier);
    };
    if recorded == current {
        return Ok(earlier);
    }
    let changes = differences(recorded, current, state.step, total_steps);
    if changes.is_empty() {
        return Ok(earlier);
    }
    if resume != Resume::AllowRecipeChange {
        return Err(TrainError::RecipeChanged { checkpoint: checkpoint.to_path_buf(), changes });
    }
    let listed: Vec<String> = changes.iter().map(ToString::to_string).collect();
    eprintln!(
        "{}: continuing under a changed recipe ({}); the earlier recipe is recorded",
        checkpoint.display(),
        listed.join(", ")
    );
    let recipe: Value = serde_json::from_str(recorded).unwrap_or(Value::String(recorded.clone()));
    earlier.push(serde_json::json!({ "until_step": state.step, "recipe": recipe }).to_string());
    Ok(earlier)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECIPE: &str = r#"{"description":"a","epochs":3,"checkpoint_every":2,"schedule":{"kind":"steps","base":0.1,"milestones":[6]},"augment":[{"kind":"flip"}]}"#;

    #[test]
    fn differences_name_the_fields_and_ignore_what_changes_nothing() {
        let changed = RECIPE.replace("0.1", "0.2").replace("[6]", "[6,8]").replace("\"a\"", "\"b\"");
        let found = differences(RECIPE, &changed, 4, 9);
        let text: Vec<String> = found.iter().map(ToString::to_string).collect();
        assert_eq!(text, ["`schedule.base`: 0.1 -> 0.2", "`schedule.milestones[1]`: (absent) -> 8"]);
        // Lengthening is fine; shortening below the steps taken is not.
        let longer = RECIPE.replace("\"epochs\":3", "\"epochs\":5");
        assert!(differences(RECIPE, &longer, 4, 15).is_empty());
        let shorter = RECIPE.replace("\"epochs\":3", "\"epochs\":1");
        assert_eq!(differences(RECIPE, &shorter, 4, 3)[0].field, "epochs");
    }
}
