//! Prometheus' `relabel_config`, every action, with the semantics of Prometheus 2.42
//! (`model/relabel/relabel.go`): target relabeling before a scrape, metric relabeling after.
//!
//! - [`RelabelConfig`]: one rule, deserialized from prometheus.yml with Prometheus' defaults
//!   and checked as Prometheus checks it ([`RelabelConfig::validate`], [`RelabelError`]).
//! - [`process`]: applies rules in order to a label set; `false` means the set is dropped.
//! - [`Regex`]: a rule's regular expression, in Go's RE2 syntax, anchored at both ends.
//!
//! ```
//! use std::collections::BTreeMap;
//! use obs_scrape::relabel::{process, RelabelConfig};
//!
//! let rules: Vec<RelabelConfig> = serde_yaml::from_str(
//!     r#"
//! - source_labels: [__meta_kubernetes_pod_phase]
//!   regex: Succeeded|Failed
//!   action: drop
//! - regex: __meta_kubernetes_pod_label_(.+)
//!   action: labelmap
//! "#,
//! )
//! .unwrap();
//! let mut labels = BTreeMap::from([
//!     ("__meta_kubernetes_pod_phase".to_owned(), "Running".to_owned()),
//!     ("__meta_kubernetes_pod_label_app".to_owned(), "api".to_owned()),
//! ]);
//! assert!(process(&mut labels, &rules));
//! assert_eq!(labels["app"], "api");
//! ```
//!
//! Regular expressions are written in Go's RE2 syntax, as for Prometheus. The `regex` crate
//! reads nearly the same language; [`Regex::new`] rewrites the few constructs where the two
//! differ so that a pattern means here what it means in Prometheus (see `obs_core::goregex`).
//! Replacement templates (`$1`, `${1}`, `$name`, `${name}`) are expanded by Go's
//! `Regexp.ExpandString` rules, not the `regex` crate's: `$1x` names group `1x`, `$01` names
//! no group, and a malformed reference such as `${1-}` stays literal.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use md5::{Digest, Md5};
use obs_core::series::is_valid_label_name;
use serde::de::value::MapAccessDeserializer;
use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The regex of a rule that sets none (Prometheus' default).
const DEFAULT_REGEX: &str = "(.*)";
/// The separator of a rule that sets none.
const DEFAULT_SEPARATOR: &str = ";";
/// The replacement of a rule that sets none.
const DEFAULT_REPLACEMENT: &str = "$1";

/// The default regex, compiled once.
static DEFAULT_COMPILED_REGEX: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(DEFAULT_REGEX).expect("the default relabel regex is valid"));

/// What a `target_label` (replace, lowercase, uppercase, keepequal, dropequal) or a labelmap
/// `replacement` must look like: a label name in which `$1`, `${1}`, `$name` or `${name}`
/// may stand for letters (Prometheus' `relabelTarget`; Go's `\w` is ASCII).
static RELABEL_TARGET: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$")
        .expect("the relabel target pattern is valid")
});

/// Non-ASCII characters that Go's template expansion counts as part of a group name
/// (`unicode.IsLetter` or `unicode.IsDigit`).
static UNICODE_LETTER_OR_DIGIT: LazyLock<regex::Regex> =
    LazyLock::new(|| regex::Regex::new(r"^[\p{L}\p{Nd}]$").expect("the letter-or-digit pattern is valid"));

/// Why a relabel rule was refused. The messages are Prometheus 2.42's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelabelError {
    /// `action: null`.
    #[error("relabel action cannot be empty")]
    EmptyAction,
    /// An action Prometheus does not know.
    #[error("unknown relabel action {0:?}")]
    UnknownAction(String),
    /// A list entry with nothing in it (`- ` or `- null`).
    #[error("empty or null relabeling rule")]
    EmptyRule,
    /// A source label that is not a valid label name.
    #[error("{0:?} is not a valid label name")]
    InvalidSourceLabel(String),
    /// A regex that does not compile.
    #[error("error parsing regexp {regex:?}: {message}")]
    InvalidRegex {
        /// The pattern as written.
        regex: String,
        /// What is wrong with it.
        message: String,
    },
    /// `hashmod` without `modulus`.
    #[error("relabel configuration for hashmod requires non-zero modulus")]
    ModulusRequired,
    /// An action that writes a label, without `target_label`.
    #[error("relabel configuration for {0} action requires 'target_label' value")]
    TargetLabelRequired(Action),
    /// A `target_label` that is neither a label name nor, where allowed, a template of one.
    #[error("{target_label:?} is invalid 'target_label' for {action} action")]
    InvalidTargetLabel {
        /// The target label as written.
        target_label: String,
        /// The rule's action.
        action: Action,
    },
    /// A `replacement` on an action that takes none.
    #[error("'replacement' can not be set for {0} action")]
    ReplacementNotAllowed(Action),
    /// A labelmap `replacement` that is not a template of a label name.
    #[error("{replacement:?} is invalid 'replacement' for {action} action")]
    InvalidReplacement {
        /// The replacement as written.
        replacement: String,
        /// The rule's action.
        action: Action,
    },
    /// keepequal or dropequal with a field other than `source_labels` and `target_label`.
    #[error("{0} action requires only 'source_labels' and `target_label`, and no other fields")]
    OnlySourceAndTargetLabels(Action),
    /// labeldrop or labelkeep with a field other than `regex`.
    #[error("{0} action requires only 'regex', and no other fields")]
    OnlyRegex(Action),
}

/// What a rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Sets `target_label` to `replacement` if `regex` matches the source values.
    Replace,
    /// Drops the label set unless `regex` matches the source values.
    Keep,
    /// Drops the label set if `regex` matches the source values.
    Drop,
    /// Drops the label set unless the source values equal `target_label`'s value.
    KeepEqual,
    /// Drops the label set if the source values equal `target_label`'s value.
    DropEqual,
    /// Sets `target_label` to a hash of the source values modulo `modulus`.
    HashMod,
    /// Copies every label whose name matches `regex` to the name `replacement` expands to.
    LabelMap,
    /// Removes every label whose name matches `regex`.
    LabelDrop,
    /// Removes every label whose name does not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the source values in lower case.
    Lowercase,
    /// Sets `target_label` to the source values in upper case.
    Uppercase,
}

impl Action {
    /// The name prometheus.yml uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = RelabelError;

    /// Reads an action name in any case, as Prometheus does (`Keep`, `LABELMAP`).
    fn from_str(name: &str) -> Result<Action, RelabelError> {
        let action = match go_to_lower(name).as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            _ => return Err(RelabelError::UnknownAction(name.to_owned())),
        };
        Ok(action)
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Action, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(D::Error::custom)
    }
}

/// A rule's regular expression: Go RE2 syntax, matched against whole strings (Prometheus
/// compiles `^(?:` + pattern + `)$`). Two regexes are equal when their patterns are.
#[derive(Clone)]
pub struct Regex {
    /// The pattern as written in the configuration.
    source: String,
    /// The pattern in the `regex` crate's syntax, anchored.
    anchored: regex::Regex,
}

impl Regex {
    /// Compiles a pattern written in Go's RE2 syntax, anchored at both ends.
    pub fn new(source: &str) -> Result<Regex, RelabelError> {
        // The `regex` crate's default size limit: patterns come from the configuration.
        let anchored = compile_anchored(source, 10 << 20).map_err(|message| RelabelError::InvalidRegex {
            regex: source.to_owned(),
            message,
        })?;
        Ok(Regex {
            source: source.to_owned(),
            anchored,
        })
    }

    /// The pattern as written, without the anchors.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the pattern matches the whole of `text`.
    pub fn is_match(&self, text: &str) -> bool {
        self.anchored.is_match(text)
    }
}

impl Default for Regex {
    /// `(.*)`, Prometheus' default.
    fn default() -> Regex {
        DEFAULT_COMPILED_REGEX.clone()
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Regex) -> bool {
        self.source == other.source
    }
}

impl Eq for Regex {}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Regex").field(&self.source).finish()
    }
}

impl<'de> Deserialize<'de> for Regex {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Regex, D::Error> {
        let source = String::deserialize(deserializer)?;
        Regex::new(&source).map_err(D::Error::custom)
    }
}

/// One relabel rule, with Prometheus' defaults: separator `;`, regex `(.*)`, replacement `$1`,
/// action `replace`.
///
/// Deserializing checks it as Prometheus does when it loads prometheus.yml
/// ([`RelabelConfig::validate`] plus what only the YAML shows: a null entry, `action: null`,
/// `source_labels: []` on labeldrop and labelkeep). Unknown fields are refused. As in
/// Prometheus (whose YAML decoder sets a null field to its zero value), `regex: null` is the
/// empty regex, which matches only the empty string, and `separator: null` and
/// `replacement: null` are empty strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelabelConfig {
    /// Labels whose values are joined, in this order; a missing label gives "".
    pub source_labels: Vec<String>,
    /// Put between the source values.
    pub separator: String,
    /// Matched against the joined source values (or, for labelmap, labeldrop and labelkeep,
    /// against each label name).
    pub regex: Regex,
    /// Divisor of the hash, for hashmod.
    pub modulus: u64,
    /// The label written (replace: a template expanded from the regex match), or compared
    /// (keepequal, dropequal).
    pub target_label: String,
    /// The value template for replace, the name template for labelmap.
    pub replacement: String,
    /// What the rule does.
    pub action: Action,
}

impl Default for RelabelConfig {
    /// Prometheus' `DefaultRelabelConfig`. Its empty `target_label` does not validate: a
    /// replace rule needs one.
    fn default() -> RelabelConfig {
        RelabelConfig {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.to_owned(),
            regex: Regex::default(),
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.to_owned(),
            action: Action::Replace,
        }
    }
}

impl RelabelConfig {
    /// Checks what Prometheus 2.42 checks when it loads a rule, in the same order and with the
    /// same messages.
    pub fn validate(&self) -> Result<(), RelabelError> {
        // Prometheus checks these while decoding `source_labels`.
        if let Some(name) = self.source_labels.iter().find(|name| !is_valid_label_name(name)) {
            return Err(RelabelError::InvalidSourceLabel(name.clone()));
        }
        let action = self.action;
        if action == Action::HashMod && self.modulus == 0 {
            return Err(RelabelError::ModulusRequired);
        }
        let writes_or_reads_target = matches!(
            action,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if writes_or_reads_target && self.target_label.is_empty() {
            return Err(RelabelError::TargetLabelRequired(action));
        }
        let takes_no_replacement = matches!(
            action,
            Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual
        );
        // Prometheus 2.42 accepts a template here for every one of these actions, though only
        // replace expands it; the others then use the name as written.
        if (action == Action::Replace || takes_no_replacement) && !RELABEL_TARGET.is_match(&self.target_label)
        {
            return Err(self.invalid_target_label());
        }
        if takes_no_replacement && self.replacement != DEFAULT_REPLACEMENT {
            return Err(RelabelError::ReplacementNotAllowed(action));
        }
        if action == Action::LabelMap && !RELABEL_TARGET.is_match(&self.replacement) {
            return Err(RelabelError::InvalidReplacement {
                replacement: self.replacement.clone(),
                action,
            });
        }
        if action == Action::HashMod && !is_valid_label_name(&self.target_label) {
            return Err(self.invalid_target_label());
        }
        if matches!(action, Action::KeepEqual | Action::DropEqual)
            && (self.regex.as_str() != DEFAULT_REGEX
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(RelabelError::OnlySourceAndTargetLabels(action));
        }
        if matches!(action, Action::LabelDrop | Action::LabelKeep)
            && (!self.source_labels.is_empty()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(RelabelError::OnlyRegex(action));
        }
        Ok(())
    }

    fn invalid_target_label(&self) -> RelabelError {
        RelabelError::InvalidTargetLabel {
            target_label: self.target_label.clone(),
            action: self.action,
        }
    }

    /// Applies this one rule; returns false if it drops the label set. A label set to the
    /// empty value is removed; labels that had an empty value before are left as they are
    /// ([`process`] removes them at the end). The rule should be valid: an unvalidated
    /// hashmod rule with modulus 0 does nothing.
    pub fn apply(&self, labels: &mut BTreeMap<String, String>) -> bool {
        let source_value = self.joined_source_values(labels);
        match self.action {
            Action::Drop => return !self.regex.is_match(&source_value),
            Action::Keep => return self.regex.is_match(&source_value),
            Action::DropEqual => return label_value(labels, &self.target_label) != source_value,
            Action::KeepEqual => return label_value(labels, &self.target_label) == source_value,
            Action::Replace => self.replace(labels, &source_value),
            Action::Lowercase => {
                set_label(labels, self.target_label.clone(), go_to_lower(&source_value));
            }
            Action::Uppercase => {
                set_label(labels, self.target_label.clone(), go_to_upper(&source_value));
            }
            Action::HashMod => {
                if let Some(bucket) = md5_sum64(&source_value).checked_rem(self.modulus) {
                    set_label(labels, self.target_label.clone(), bucket.to_string());
                }
            }
            Action::LabelMap => {
                // Every name is matched against the labels as they were before this rule.
                let mapped: Vec<(String, String)> = labels
                    .iter()
                    .filter(|(name, _)| self.regex.is_match(name))
                    .map(|(name, value)| (self.map_label_name(name), value.clone()))
                    .collect();
                for (name, value) in mapped {
                    set_label(labels, name, value);
                }
            }
            Action::LabelDrop => labels.retain(|name, _| !self.regex.is_match(name)),
            Action::LabelKeep => labels.retain(|name, _| self.regex.is_match(name)),
        }
        true
    }

    /// The source labels' values joined by the separator; a missing label counts as "".
    fn joined_source_values(&self, labels: &BTreeMap<String, String>) -> String {
        let mut joined = String::new();
        for (index, name) in self.source_labels.iter().enumerate() {
            if index > 0 {
                joined.push_str(&self.separator);
            }
            joined.push_str(label_value(labels, name));
        }
        joined
    }

    fn replace(&self, labels: &mut BTreeMap<String, String>, source_value: &str) {
        let Some(captures) = self.regex.anchored.captures(source_value) else {
            // No match, no replacement.
            return;
        };
        let mut target_label = String::new();
        expand_template(&self.target_label, &captures, &mut target_label);
        // Prometheus 2.42 deletes `target_label` as written (not as expanded) in the next two
        // cases; for a template such as `${1}` that deletes nothing. Prometheus 2.50 changed
        // the second case to delete the expanded name.
        if !is_valid_label_name(&target_label) {
            labels.remove(&self.target_label);
            return;
        }
        let mut value = String::new();
        expand_template(&self.replacement, &captures, &mut value);
        if value.is_empty() {
            labels.remove(&self.target_label);
            return;
        }
        labels.insert(target_label, value);
    }

    /// Labelmap's new name for `name`: Go's `ReplaceAllString(name, replacement)`. The regex
    /// is anchored, so the whole name is replaced by the expanded template.
    fn map_label_name(&self, name: &str) -> String {
        let replaced = self
            .regex
            .anchored
            .replace_all(name, |captures: &regex::Captures<'_>| {
                let mut expanded = String::new();
                expand_template(&self.replacement, captures, &mut expanded);
                expanded
            });
        replaced.into_owned()
    }
}

/// The fields of [`RawRelabelConfig`].
const RAW_FIELDS: &[&str] = &[
    "source_labels",
    "separator",
    "regex",
    "modulus",
    "target_label",
    "replacement",
    "action",
];

/// The YAML shape of a rule: `None` where the field is null, the default where it is absent
/// (Prometheus starts from `DefaultRelabelConfig` and its decoder zeroes null fields).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelabelConfig {
    #[serde(default)]
    source_labels: Option<Vec<String>>,
    #[serde(default = "default_separator")]
    separator: Option<String>,
    #[serde(default = "default_regex")]
    regex: Option<Regex>,
    #[serde(default)]
    modulus: Option<u64>,
    #[serde(default)]
    target_label: Option<String>,
    #[serde(default = "default_replacement")]
    replacement: Option<String>,
    #[serde(default = "default_action")]
    action: Option<Action>,
}

fn default_separator() -> Option<String> {
    Some(DEFAULT_SEPARATOR.to_owned())
}

fn default_regex() -> Option<Regex> {
    Some(Regex::default())
}

fn default_replacement() -> Option<String> {
    Some(DEFAULT_REPLACEMENT.to_owned())
}

fn default_action() -> Option<Action> {
    Some(Action::Replace)
}

impl TryFrom<RawRelabelConfig> for RelabelConfig {
    type Error = RelabelError;

    fn try_from(raw: RawRelabelConfig) -> Result<RelabelConfig, RelabelError> {
        let action = raw.action.ok_or(RelabelError::EmptyAction)?;
        let source_labels_present = raw.source_labels.is_some();
        let regex = match raw.regex {
            Some(regex) => regex,
            None => Regex::new("")?,
        };
        let config = RelabelConfig {
            source_labels: raw.source_labels.unwrap_or_default(),
            separator: raw.separator.unwrap_or_default(),
            regex,
            modulus: raw.modulus.unwrap_or_default(),
            target_label: raw.target_label.unwrap_or_default(),
            replacement: raw.replacement.unwrap_or_default(),
            action,
        };
        config.validate()?;
        // Prometheus refuses `source_labels: []` here too, which the `Vec` cannot show.
        if matches!(action, Action::LabelDrop | Action::LabelKeep) && source_labels_present {
            return Err(RelabelError::OnlyRegex(action));
        }
        Ok(config)
    }
}

impl<'de> Deserialize<'de> for RelabelConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RelabelConfig, D::Error> {
        deserializer.deserialize_option(RuleVisitor)
    }
}

/// Reads a rule and checks it inside the mapping, so that the YAML deserializer gives every
/// error the rule's line and column.
struct RuleVisitor;

impl<'de> Visitor<'de> for RuleVisitor {
    type Value = RelabelConfig;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a relabel rule")
    }

    fn visit_none<E: serde::de::Error>(self) -> Result<RelabelConfig, E> {
        Err(E::custom(RelabelError::EmptyRule))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<RelabelConfig, E> {
        Err(E::custom(RelabelError::EmptyRule))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<RelabelConfig, D::Error> {
        deserializer.deserialize_struct("RelabelConfig", RAW_FIELDS, RuleVisitor)
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RelabelConfig, A::Error> {
        let raw = RawRelabelConfig::deserialize(MapAccessDeserializer::new(map))?;
        RelabelConfig::try_from(raw).map_err(A::Error::custom)
    }
}

/// Applies `rules` in order to `labels` (an empty value means the label is absent). Returns
/// false if a keep, drop, keepequal or dropequal rule drops the set; `labels` is then
/// emptied, as Prometheus returns an empty set. Otherwise labels left with an empty value
/// are removed.
pub fn process(labels: &mut BTreeMap<String, String>, rules: &[RelabelConfig]) -> bool {
    for rule in rules {
        if !rule.apply(labels) {
            labels.clear();
            return false;
        }
    }
    labels.retain(|_, value| !value.is_empty());
    true
}

fn label_value<'a>(labels: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    labels.get(name).map_or("", String::as_str)
}

/// Sets a label; the empty value deletes it (Prometheus' `labels.Builder.Set`).
fn set_label(labels: &mut BTreeMap<String, String>, name: String, value: String) {
    if value.is_empty() {
        labels.remove(&name);
    } else {
        labels.insert(name, value);
    }
}

/// The last 8 bytes of the MD5 digest of `text`, big-endian, as hashmod uses them.
fn md5_sum64(text: &str) -> u64 {
    let digest = Md5::digest(text.as_bytes());
    let mut last_eight = [0_u8; 8];
    last_eight.copy_from_slice(&digest[8..]);
    u64::from_be_bytes(last_eight)
}

/// Go's `strings.ToLower`: every character by itself, by Unicode's simple case mapping (Rust's
/// `str::to_lowercase` applies the final-sigma rule, and maps `İ` to two characters).
fn go_to_lower(text: &str) -> String {
    // Only `İ` has a full mapping longer than one character; its first is the simple mapping.
    text.chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// Go's `strings.ToUpper`: every character by itself, by Unicode's simple case mapping (Rust's
/// `str::to_uppercase` maps `ß` to `SS`; Go leaves it).
fn go_to_upper(text: &str) -> String {
    text.chars().map(simple_uppercase).collect()
}

fn simple_uppercase(c: char) -> char {
    let mut full = c.to_uppercase();
    if full.len() == 1 {
        return full.next().unwrap_or(c);
    }
    // The characters whose full mapping is longer than one character have no simple
    // mapping, except the Greek letters with ypogegrammeni, which map to the capital with
    // prosgegrammeni.
    let simple = match u32::from(c) {
        code @ (0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7) => code + 8,
        0x1FB3 => 0x1FBC,
        0x1FC3 => 0x1FCC,
        0x1FF3 => 0x1FFC,
        _ => return c,
    };
    char::from_u32(simple).unwrap_or(c)
}

/// A group reference in a replacement template.
enum GroupRef<'a> {
    Index(usize),
    Name(&'a str),
}

/// Appends `template` to `out` with every group reference replaced by what that group
/// matched (nothing if it did not take part or does not exist), as Go's
/// `Regexp.ExpandString` does: `$$` is `$`; `$name` takes the longest run of letters,
/// digits and `_`; `${name}` is braced; a name of digits without a leading zero, below
/// 10^9, is a group number; a `$` that starts no valid reference stays literal.
fn expand_template(template: &str, captures: &regex::Captures<'_>, out: &mut String) {
    let mut rest = template;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        rest = &rest[dollar + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some((group, after)) = parse_group_ref(rest) else {
            out.push('$');
            continue;
        };
        let matched = match group {
            GroupRef::Index(index) => captures.get(index),
            GroupRef::Name(name) => captures.name(name),
        };
        out.push_str(matched.map_or("", |m| m.as_str()));
        rest = after;
    }
    out.push_str(rest);
}

/// Reads the reference after a `$`: the reference and the text after it.
fn parse_group_ref(text: &str) -> Option<(GroupRef<'_>, &str)> {
    let (braced, body) = match text.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let name_len: usize = body
        .chars()
        .take_while(|c| is_template_name_char(*c))
        .map(char::len_utf8)
        .sum();
    if name_len == 0 {
        return None;
    }
    let name = &body[..name_len];
    let mut after = &body[name_len..];
    if braced {
        after = after.strip_prefix('}')?;
    }
    Some((group_ref(name), after))
}

fn is_template_name_char(c: char) -> bool {
    if c.is_ascii() {
        return c.is_ascii_alphanumeric() || c == '_';
    }
    UNICODE_LETTER_OR_DIGIT.is_match(c.encode_utf8(&mut [0; 4]))
}

/// A group number per Go: ASCII digits, no leading zero, accumulated while below 10^8.
fn group_ref(name: &str) -> GroupRef<'_> {
    const GO_NUMBER_LIMIT: usize = 100_000_000;
    if name.len() > 1 && name.starts_with('0') {
        return GroupRef::Name(name);
    }
    let mut number: usize = 0;
    for byte in name.bytes() {
        if !byte.is_ascii_digit() || number >= GO_NUMBER_LIMIT {
            return GroupRef::Name(name);
        }
        number = number * 10 + usize::from(byte - b'0');
    }
    GroupRef::Index(number)
}

use obs_core::goregex::compile_anchored;

#[cfg(test)]
mod tests {
    use super::*;

    fn translated_matches(pattern: &str, text: &str) -> bool {
        Regex::new(pattern).expect("pattern compiles").is_match(text)
    }

    #[test]
    fn perl_classes_are_ascii_as_in_go() {
        assert!(translated_matches(r"\d+", "0123456789"));
        assert!(
            !translated_matches(r"\d", "٣"),
            "Arabic-Indic digit is not \\d in Go"
        );
        assert!(translated_matches(r"\D", "٣"));
        assert!(!translated_matches(r"\w", "é"));
        assert!(translated_matches(r"\W", "é"));
        assert!(translated_matches(r"\w+", "a_Z9"));
        assert!(
            !translated_matches(r"\s", "\u{a0}"),
            "no-break space is not \\s in Go"
        );
        assert!(
            !translated_matches(r"\s", "\u{b}"),
            "Go's \\s has no vertical tab"
        );
        assert!(translated_matches(r"\s\S", "\tx"));
        assert!(translated_matches(r"[\d.]+", "1.2"));
        assert!(!translated_matches(r"[\w]", "é"));
        assert!(translated_matches(r"[\W]", "é"));
        assert!(translated_matches(r"[^\D]", "7"));
        assert!(!translated_matches(r"[^\D]", "x"));
        assert!(translated_matches(r"x\b.*", "x-é"));
        assert!(
            translated_matches(r".*\bé", "xé"),
            "é is not a word character in Go"
        );
        assert!(
            translated_matches(r"(?i)\w", "\u{212a}"),
            "Go folds K to the Kelvin sign"
        );
    }

    #[test]
    fn go_literals_stay_literal() {
        assert!(translated_matches(r"a\<b\>", "a<b>"));
        assert!(translated_matches(r"(.+?)(\:\d+)?", "host:80"));
        assert!(
            translated_matches(r"\Qa.b*\E+", "a.b**"),
            "+ repeats the last quoted character"
        );
        assert!(!translated_matches(r"\Qa.b\E", "axb"));
        assert!(translated_matches(r"\Q(unclosed", "(unclosed"));
        assert!(translated_matches(r"a{", "a{"));
        assert!(translated_matches(r"a{,3}", "a{,3}"));
        assert!(translated_matches(r"a{01}", "a{01}"));
        assert!(translated_matches(r"{}", "{}"));
        assert!(translated_matches(r"a{2}", "aa"));
        assert!(translated_matches(r"a{1,}", "aaa"));
        assert!(translated_matches(r"a{1,2}", "aa"));
        assert!(translated_matches(r"\x41\x{42}\101", "ABA"));
        assert!(translated_matches(r"\p{Greek}\pL", "αb"));
        assert!(translated_matches(r"a\ b\#", "a b#"));
    }

    #[test]
    fn go_classes_keep_their_meaning() {
        assert!(translated_matches(r"[]a]+", "]a"));
        assert!(translated_matches(r"[^]a]", "b"));
        assert!(translated_matches(r"[[a]+", "[a["));
        assert!(translated_matches(r"[a&&b]+", "a&b"));
        assert!(translated_matches(r"[a~~b]+", "~ab"));
        assert!(translated_matches(r"[a-z-0]+", "q-0"));
        assert!(translated_matches(r"[--/]+", "-./"));
        assert!(translated_matches(r"[-a]+", "-a"));
        assert!(translated_matches(r"[\d-z]+", "1-z"));
        assert!(!translated_matches(r"[\d-z]", "m"));
        assert!(translated_matches(r"[[:alpha:]]+", "abc"));
        assert!(translated_matches(r"[[:^digit:]]", "a"));
        assert!(translated_matches(r"[\p{Greek}\]]+", "α]"));
        assert!(translated_matches(r"[\x41-\x{43}]+", "ABC"));
        assert!(translated_matches(r"[a\-z]+", "a-z"));
        assert!(!translated_matches(r"[a\-z]", "m"));
    }

    #[test]
    fn invalid_patterns_are_refused_with_the_pattern_named() {
        for pattern in ["abc(def", "[abc", "a)", "*", r"\", r"\8", r"\E"] {
            let err = Regex::new(pattern).expect_err(pattern);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("error parsing regexp {pattern:?}: ")),
                "{message}"
            );
            assert!(!message.contains('\n'), "{message}");
        }
    }

    #[test]
    fn template_expansion_follows_go() {
        let regex = Regex::new("(?P<first>a)(b)?(c)").expect("compiles");
        let captures = regex.anchored.captures("ac").expect("matches");
        let expand = |template: &str| {
            let mut out = String::new();
            expand_template(template, &captures, &mut out);
            out
        };
        assert_eq!(expand("$1-${1}-$first-${first}"), "a-a-a-a");
        assert_eq!(expand("$1x"), "", "$1x names the group 1x");
        assert_eq!(expand("${1}x"), "ax");
        assert_eq!(
            expand("$2|$3"),
            "|c",
            "a group that did not match expands to nothing"
        );
        assert_eq!(expand("$01"), "", "a leading zero makes a name, not a number");
        assert_eq!(expand("$9"), "");
        assert_eq!(expand("$$1"), "$1");
        assert_eq!(expand("${1-}|$|${}|$-|x$"), "${1-}|$|${}|$-|x$");
        assert_eq!(expand("${1"), "${1");
        assert_eq!(expand("$1é"), "", "Go counts letters beyond ASCII in names");
        assert_eq!(expand("$1²"), "a²", "a superscript digit is not a decimal digit");
        assert_eq!(expand("$999999999"), "");
        assert_eq!(expand("$9999999999"), "");
    }

    #[test]
    fn case_mapping_follows_go() {
        assert_eq!(go_to_lower("ΣΑΣ"), "σασ", "no final sigma in Go");
        assert_eq!(go_to_lower("İ"), "i");
        assert_eq!(go_to_upper("straße"), "STRAßE");
        assert_eq!(go_to_upper("ﬁ"), "ﬁ");
        assert_eq!(go_to_upper("\u{1f80}\u{1fb3}"), "\u{1f88}\u{1fbc}");
        assert_eq!(go_to_upper("ǆ"), "Ǆ");
        assert_eq!(go_to_lower("bAr123Foo"), "bar123foo");
    }

    #[test]
    fn actions_parse_in_any_case() {
        assert_eq!("LabelMap".parse::<Action>(), Ok(Action::LabelMap));
        assert_eq!("KEEPEQUAL".parse::<Action>(), Ok(Action::KeepEqual));
        assert_eq!(
            "\u{212a}eep".parse::<Action>(),
            Ok(Action::Keep),
            "Go lowercases K too"
        );
        assert_eq!(
            "copy".parse::<Action>(),
            Err(RelabelError::UnknownAction("copy".to_owned()))
        );
        assert_eq!(
            "".parse::<Action>(),
            Err(RelabelError::UnknownAction(String::new()))
        );
    }

    #[test]
    fn hashmod_takes_the_last_eight_bytes_of_md5() {
        // python3: int.from_bytes(hashlib.md5(b"baz").digest()[8:], "big")
        assert_eq!(md5_sum64("baz"), 16_450_797_887_570_275_976);
        assert_eq!(md5_sum64(""), 16_825_458_760_271_544_958);
    }
}
