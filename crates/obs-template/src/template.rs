//! A parsed template and how to run it.

use std::sync::Arc;

use crate::error::TemplateError;
use crate::funcs::{Builtin, Functions};
use crate::parse::{self, Node, TreeSet};
use crate::value::Value;

/// What reading a missing map key yields (Go's `missingkey` option).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingKey {
    /// `missingkey=default`: no value, printed as `<no value>`.
    #[default]
    Default,
    /// `missingkey=zero`: the zero value of the map's element type: `""` for a
    /// [`Value::StringMap`], still `<no value>` for a [`Value::Map`] (a nil interface), as in Go.
    Zero,
    /// `missingkey=error`: execution stops with `map has no entry for key "…"`.
    Error,
}

/// Bounds on one execution, so that a hostile template can neither hang nor exhaust memory or
/// the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum size of the output, and of any string a function returns.
    pub max_output_bytes: usize,
    /// Maximum nesting of lists, pipelines and `{{template}}` calls together.
    pub max_depth: usize,
    /// Maximum number of nodes walked and commands evaluated.
    pub max_steps: u64,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_output_bytes: 1 << 20,
            max_depth: 100,
            max_steps: 1_000_000,
        }
    }
}

/// A parsed Go text/template: the top-level template and those it `define`s.
///
/// ```
/// use obs_template::{Template, Value};
/// let template = Template::parse("greeting", "Hello, {{ .name }}!").unwrap();
/// let data = Value::Map([("name".to_owned(), Value::from("world"))].into_iter().collect());
/// assert_eq!(template.execute(&data).unwrap(), "Hello, world!");
/// ```
#[derive(Debug, Clone)]
pub struct Template {
    name: String,
    text: Arc<str>,
    trees: TreeSet,
    functions: Functions,
    pub(crate) missing_key: MissingKey,
    pub(crate) limits: Limits,
}

impl Template {
    /// Parses `text` as template `name` with Go's builtin functions only.
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        Template::parse_with_functions(name, text, Functions::new())
    }

    /// Parses `text` as template `name`; `functions` are callable besides Go's builtins (and
    /// replace builtins of the same name).
    pub fn parse_with_functions(
        name: &str,
        text: &str,
        functions: Functions,
    ) -> Result<Template, TemplateError> {
        let has_function = |name: &str| functions.contains(name) || Builtin::lookup(name).is_some();
        let trees = parse::parse(name, text, &has_function)?;
        Ok(Template {
            name: name.to_owned(),
            text: Arc::from(text),
            trees,
            functions,
            missing_key: MissingKey::Default,
            limits: Limits::default(),
        })
    }

    /// Sets what a missing map key yields.
    pub fn with_missing_key(mut self, missing_key: MissingKey) -> Template {
        self.missing_key = missing_key;
        self
    }

    /// Sets the execution limits.
    pub fn with_limits(mut self, limits: Limits) -> Template {
        self.limits = limits;
        self
    }

    /// The name the template was parsed under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The names of all templates in the set, the top-level one included, in order.
    pub fn template_names(&self) -> impl Iterator<Item = &str> {
        self.trees.keys().map(String::as_str)
    }

    /// Runs the top-level template over `data`.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        self.execute_template(&self.name, data)
    }

    /// Runs the template `name` of the set (Go's `ExecuteTemplate`) over `data`.
    pub fn execute_template(&self, name: &str, data: &Value) -> Result<String, TemplateError> {
        let Some((tree_name, root)) = self.tree(name) else {
            return Err(TemplateError::Execute(format!(
                "template: no template {} associated with template {}",
                crate::gofmt::quote(name),
                crate::gofmt::quote(&self.name)
            )));
        };
        crate::exec::execute(self, tree_name, root, data)
    }

    pub(crate) fn tree(&self, name: &str) -> Option<(&str, &[Node])> {
        self.trees
            .get_key_value(name)
            .map(|(name, root)| (name.as_str(), root.as_slice()))
    }

    pub(crate) fn text(&self) -> &str {
        &self.text
    }

    pub(crate) fn functions(&self) -> &Functions {
        &self.functions
    }
}
