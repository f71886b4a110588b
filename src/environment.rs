//! A misspelt `AIRLOCK_*` variable would otherwise be ignored without a word: warn, naming the
//! closest variable airlock reads.

use airlock_config::ENV_PREFIX;

/// Variables read outside clap's definitions and the configuration keys.
const OTHER_VARIABLES: &[&str] = &[
    "AIRLOCK_KEY_PASSWORD",
    "AIRLOCK_CACHE_DIR",
    "AIRLOCK_REGISTRY_HOST",
    "AIRLOCK_REGISTRY_USERNAME",
    "AIRLOCK_REGISTRY_PASSWORD",
];

/// Warns on standard error about each `AIRLOCK_*` variable that nothing reads.
pub fn warn_unknown_variables(cli: &clap::Command, vars: impl IntoIterator<Item = (String, String)>) {
    let known = known_variables(cli);
    for warning in unknown_variable_warnings(&known, vars.into_iter().map(|(name, _)| name)) {
        eprintln!("warning: {warning}");
    }
}

fn unknown_variable_warnings(known: &[String], names: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut warnings: Vec<String> = names
        .into_iter()
        .filter(|name| name.starts_with(ENV_PREFIX) && !known.contains(name))
        .map(|name| match closest(known, &name) {
            Some(suggestion) => format!("{name} is not a variable airlock reads; did you mean {suggestion}?"),
            None => format!("{name} is not a variable airlock reads (see docs/configuration.md)"),
        })
        .collect();
    warnings.sort();
    warnings
}

/// The configuration keys' variables, every `env = …` of the command line, and the rest.
fn known_variables(cli: &clap::Command) -> Vec<String> {
    let mut known: Vec<String> = airlock_config::variable_names().collect();
    known.extend(OTHER_VARIABLES.iter().map(|s| s.to_string()));
    let mut stack = vec![cli];
    while let Some(command) = stack.pop() {
        known.extend(command.get_arguments().filter_map(|a| a.get_env()).map(|e| e.to_string_lossy().into_owned()));
        stack.extend(command.get_subcommands());
    }
    known.sort();
    known.dedup();
    known
}

/// The most similar known name, if it is similar enough to be a likely typo.
fn closest<'a>(known: &'a [String], name: &str) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(k, name), k))
        .filter(|(score, _)| *score > 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn warnings(names: &[&str]) -> Vec<String> {
        unknown_variable_warnings(&known_variables(&crate::cli()), names.iter().map(|s| s.to_string()))
    }

    #[test]
    fn a_misspelt_variable_names_the_one_meant() {
        assert_eq!(
            warnings(&["AIRLOCK_MIRROR_LISTN"]),
            ["AIRLOCK_MIRROR_LISTN is not a variable airlock reads; did you mean AIRLOCK_MIRROR_LISTEN?"]
        );
        assert_eq!(
            warnings(&["AIRLOCK_TOKN"]),
            ["AIRLOCK_TOKN is not a variable airlock reads; did you mean AIRLOCK_TOKEN?"]
        );
    }

    #[test]
    fn known_and_foreign_variables_pass_quietly() {
        let read = ["AIRLOCK_MIRROR_LISTEN", "AIRLOCK_URL", "AIRLOCK_TOKEN", "AIRLOCK_CA_CERT", "AIRLOCK_KEY_PASSWORD", "AIRLOCK_CONFIG"];
        assert!(warnings(&read).is_empty(), "{:?}", warnings(&read));
        assert!(warnings(&["PATH", "HOME", "XAIRLOCK_URL"]).is_empty());
    }

    #[test]
    fn an_unlike_name_gets_no_guess() {
        assert_eq!(
            warnings(&["AIRLOCK_ZZZZZZZZZZZZZZZZZZZZ"]),
            ["AIRLOCK_ZZZZZZZZZZZZZZZZZZZZ is not a variable airlock reads (see docs/configuration.md)"]
        );
    }
}
