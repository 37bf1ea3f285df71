//! The executor: walks a parsed tree over a [`Value`], the way Go's `text/template/exec.go` does,
//! including where it points in error messages (the last node it was "at").
//!
//! Values read from the data are borrowed, not copied ([`Val`]); only function results are owned.
//! Every walk step, nesting level and output byte is counted against the template's [`Limits`].

use std::borrow::Cow;
use std::fmt;

use crate::error::TemplateError;
use crate::funcs::{ArgType, Builtin, Function};
use crate::gofmt;
use crate::parse::{Branch, Command, Node, Number, Pipe, Term};
use crate::template::{Limits, MissingKey, Template};
use crate::value::Value;

/// A value during execution: borrowed from the data or the template, or computed.
type Val<'a> = Cow<'a, Value>;

/// Dot, or a variable: a value, and whether Go would see it through an `interface {}` (an
/// element of a `[]interface {}` or `map[string]interface {}` that no pipeline has unwrapped
/// yet), which shows in error messages (`can't evaluate field x in type interface {}`).
#[derive(Clone)]
struct Dot<'a> {
    val: Val<'a>,
    iface: bool,
}

impl<'a> Dot<'a> {
    fn concrete(val: Val<'a>) -> Dot<'a> {
        Dot { val, iface: false }
    }
}

struct Var<'a> {
    name: &'a str,
    dot: Dot<'a>,
}

type ExecResult<T> = Result<T, TemplateError>;

/// How a list of nodes finished: normally, or by `{{break}}` / `{{continue}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flow {
    Normal,
    Break,
    Continue,
}

/// The node an error message points at.
#[derive(Clone, Copy)]
enum At<'a> {
    Node(&'a Node),
    Pipe(&'a Pipe),
    Command(&'a Command),
    Term(&'a Term),
}

impl At<'_> {
    fn pos(&self) -> usize {
        match self {
            At::Node(node) => match node {
                Node::Text(_) => 0,
                Node::Action { pos, .. }
                | Node::Template { pos, .. }
                | Node::Break { pos }
                | Node::Continue { pos } => *pos,
                Node::If(branch) | Node::Range(branch) | Node::With(branch) => branch.pos,
            },
            At::Pipe(pipe) => pipe.pos,
            At::Command(command) => command.pos,
            At::Term(term) => term.pos(),
        }
    }
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Node(node) => write!(f, "{node}"),
            At::Pipe(pipe) => write!(f, "{pipe}"),
            At::Command(command) => write!(f, "{command}"),
            At::Term(term) => write!(f, "{term}"),
        }
    }
}

/// A callable: one of Go's builtins or a registered function.
#[derive(Clone, Copy)]
enum Callable<'a> {
    Builtin(Builtin),
    Native(&'a Function),
}

pub(crate) struct State<'a> {
    template: &'a Template,
    limits: Limits,
    /// The name of the template being executed (changes on `{{template}}`).
    exec_name: &'a str,
    at: Option<At<'a>>,
    vars: Vec<Var<'a>>,
    out: String,
    depth: usize,
    steps: u64,
}

/// Executes the tree `name` of `template` over `data`.
pub(crate) fn execute<'a>(
    template: &'a Template,
    name: &'a str,
    root: &'a [Node],
    data: &'a Value,
) -> ExecResult<String> {
    let mut state = State {
        template,
        limits: template.limits,
        exec_name: name,
        at: None,
        vars: vec![Var {
            name: "$",
            dot: Dot::concrete(Cow::Borrowed(data)),
        }],
        out: String::new(),
        depth: 0,
        steps: 0,
    };
    let dot = Dot::concrete(Cow::Borrowed(data));
    state.walk_list(&dot, root)?;
    Ok(state.out)
}

impl<'a> State<'a> {
    // ---- errors and limits ----

    fn at(&mut self, at: At<'a>) {
        self.at = Some(at);
    }

    fn message(&self, message: impl fmt::Display) -> String {
        let name = gofmt::quote(self.exec_name);
        match self.at {
            None => format!("template: {}: {message}", self.exec_name),
            Some(at) => {
                let text = self.template.text();
                let pos = at.pos().min(text.len());
                let before = &text.as_bytes()[..pos];
                let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
                let column = match before.iter().rposition(|&b| b == b'\n') {
                    Some(newline) => pos - newline - 1,
                    None => pos,
                };
                format!(
                    "template: {}:{line}:{column}: executing {name} at <{at}>: {message}",
                    self.template.name()
                )
            }
        }
    }

    fn error<T>(&self, message: impl fmt::Display) -> ExecResult<T> {
        Err(TemplateError::Execute(self.message(message)))
    }

    fn limit_error<T>(&self, message: impl fmt::Display) -> ExecResult<T> {
        Err(TemplateError::LimitExceeded(self.message(message)))
    }

    fn step(&mut self) -> ExecResult<()> {
        self.steps += 1;
        if self.steps > self.limits.max_steps {
            return self.limit_error(format!(
                "execution exceeds the limit of {} steps",
                self.limits.max_steps
            ));
        }
        Ok(())
    }

    fn enter(&mut self) -> ExecResult<()> {
        if self.depth >= self.limits.max_depth {
            return self.limit_error(format!(
                "exceeded maximum template depth ({})",
                self.limits.max_depth
            ));
        }
        self.depth += 1;
        Ok(())
    }

    fn leave(&mut self) {
        self.depth -= 1;
    }

    fn check_size(&self, len: usize) -> ExecResult<()> {
        if len > self.limits.max_output_bytes {
            return self.limit_error(format!(
                "output exceeds the limit of {} bytes",
                self.limits.max_output_bytes
            ));
        }
        Ok(())
    }

    fn write(&mut self, text: &str) -> ExecResult<()> {
        self.check_size(self.out.len() + text.len())?;
        self.out.push_str(text);
        Ok(())
    }

    // ---- variables ----

    fn var_value(&self, name: &str) -> ExecResult<Dot<'a>> {
        match self.vars.iter().rev().find(|var| var.name == name) {
            Some(var) => Ok(var.dot.clone()),
            None => self.error(format!("undefined variable: {name}")),
        }
    }

    fn set_var(&mut self, name: &str, value: Val<'a>) -> ExecResult<()> {
        match self.vars.iter_mut().rev().find(|var| var.name == name) {
            Some(var) => {
                var.dot = Dot::concrete(value);
                Ok(())
            }
            None => self.error(format!("undefined variable: {name}")),
        }
    }

    fn set_top_var(&mut self, n: usize, dot: Dot<'a>) {
        let len = self.vars.len();
        if let Some(var) = len.checked_sub(n).and_then(|index| self.vars.get_mut(index)) {
            var.dot = dot;
        }
    }

    // ---- walking ----

    fn walk_list(&mut self, dot: &Dot<'a>, list: &'a [Node]) -> ExecResult<Flow> {
        self.enter()?;
        for node in list {
            let flow = self.walk(dot, node)?;
            if flow != Flow::Normal {
                self.leave();
                return Ok(flow);
            }
        }
        self.leave();
        Ok(Flow::Normal)
    }

    fn walk(&mut self, dot: &Dot<'a>, node: &'a Node) -> ExecResult<Flow> {
        self.step()?;
        self.at(At::Node(node));
        match node {
            Node::Text(text) => self.write(text)?,
            Node::Action { pipe, .. } => {
                let value = self.eval_pipeline(dot, Some(pipe))?;
                if pipe.decl.is_empty() {
                    self.print_value(node, &value)?;
                }
            }
            Node::If(branch) => return self.walk_if_or_with(dot, branch, false),
            Node::With(branch) => return self.walk_if_or_with(dot, branch, true),
            Node::Range(branch) => return self.walk_range(dot, node, branch),
            Node::Template { name, pipe, .. } => self.walk_template(dot, node, name, pipe)?,
            Node::Break { .. } => return Ok(Flow::Break),
            Node::Continue { .. } => return Ok(Flow::Continue),
        }
        Ok(Flow::Normal)
    }

    fn walk_if_or_with(&mut self, dot: &Dot<'a>, branch: &'a Branch, is_with: bool) -> ExecResult<Flow> {
        let mark = self.vars.len();
        let value = self.eval_pipeline(dot, Some(&branch.pipe))?;
        let flow = if value.is_true() {
            if is_with {
                self.walk_list(&Dot::concrete(value), &branch.list)?
            } else {
                self.walk_list(dot, &branch.list)?
            }
        } else if let Some(else_list) = &branch.else_list {
            self.walk_list(dot, else_list)?
        } else {
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn walk_range(&mut self, dot: &Dot<'a>, node: &'a Node, branch: &'a Branch) -> ExecResult<Flow> {
        self.at(At::Node(node));
        let mark = self.vars.len();
        let value = self.eval_pipeline(dot, Some(&branch.pipe))?;
        let iteration_mark = self.vars.len();
        let elements: Vec<(Value, Dot<'a>)> = match value.as_ref().plain() {
            Value::Int(count) => {
                if branch.pipe.decl.len() > 1 {
                    return self.error(format!(
                        "can't use {count} to iterate over more than one variable"
                    ));
                }
                let count = (*count).max(0);
                if count as u64 > self.limits.max_steps {
                    return self.limit_error(format!(
                        "execution exceeds the limit of {} steps",
                        self.limits.max_steps
                    ));
                }
                (0..count)
                    .map(|i| (Value::Int(i), Dot::concrete(Cow::Owned(Value::Int(i)))))
                    .collect()
            }
            Value::Nil | Value::List(_) | Value::Map(_) | Value::StringMap(_) => range_elements(&value),
            other => {
                let shown = gofmt::format_v(other);
                return self.error(format!("range can't iterate over {shown}"));
            }
        };
        let flow = if elements.is_empty() {
            match &branch.else_list {
                Some(else_list) => self.walk_list(dot, else_list)?,
                None => Flow::Normal,
            }
        } else {
            for (index, element) in elements {
                if !branch.pipe.decl.is_empty() {
                    self.set_top_var(1, element.clone());
                }
                if branch.pipe.decl.len() > 1 {
                    self.set_top_var(2, Dot::concrete(Cow::Owned(index)));
                }
                let flow = self.walk_list(&element, &branch.list)?;
                self.vars.truncate(iteration_mark);
                if flow == Flow::Break {
                    break;
                }
            }
            Flow::Normal
        };
        self.vars.truncate(mark);
        Ok(flow)
    }

    fn walk_template(
        &mut self,
        dot: &Dot<'a>,
        node: &'a Node,
        name: &'a str,
        pipe: &'a Option<Pipe>,
    ) -> ExecResult<()> {
        self.at(At::Node(node));
        let Some((tree_name, root)) = self.template.tree(name) else {
            return self.error(format!("template {} not defined", gofmt::quote(name)));
        };
        let new_dot = self.eval_pipeline(dot, pipe.as_ref())?;
        self.enter()?;
        let new_dot = Dot::concrete(new_dot);
        let saved_vars = std::mem::replace(
            &mut self.vars,
            vec![Var {
                name: "$",
                dot: new_dot.clone(),
            }],
        );
        let saved_name = std::mem::replace(&mut self.exec_name, tree_name);
        let result = self.walk_list(&new_dot, root);
        self.exec_name = saved_name;
        self.vars = saved_vars;
        self.leave();
        result.map(|_| ())
    }

    fn print_value(&mut self, node: &'a Node, value: &Val<'a>) -> ExecResult<()> {
        self.at(At::Node(node));
        match value.as_ref() {
            Value::Nil => self.write("<no value>"),
            Value::String(s) => self.write(s),
            other => {
                let text = gofmt::format_v(other);
                self.write(&text)
            }
        }
    }

    // ---- evaluation ----

    fn eval_pipeline(&mut self, dot: &Dot<'a>, pipe: Option<&'a Pipe>) -> ExecResult<Val<'a>> {
        let Some(pipe) = pipe else {
            return Ok(Cow::Owned(Value::Nil));
        };
        self.enter()?;
        self.at(At::Pipe(pipe));
        let mut value: Option<Val<'a>> = None;
        for cmd in &pipe.cmds {
            value = Some(self.eval_command(dot, cmd, value)?);
        }
        let value = value.unwrap_or(Cow::Owned(Value::Nil));
        for name in &pipe.decl {
            if pipe.is_assign {
                self.set_var(name, value.clone())?;
            } else {
                self.vars.push(Var {
                    name: name.as_str(),
                    dot: Dot::concrete(value.clone()),
                });
            }
        }
        self.leave();
        Ok(value)
    }

    fn not_a_function(&self, args: &'a [Term], final_value: &Option<Val<'a>>) -> ExecResult<()> {
        if args.len() > 1 || final_value.is_some() {
            return self.error(format!("can't give argument to non-function {}", args[0]));
        }
        Ok(())
    }

    fn eval_command(
        &mut self,
        dot: &Dot<'a>,
        cmd: &'a Command,
        final_value: Option<Val<'a>>,
    ) -> ExecResult<Val<'a>> {
        self.step()?;
        let first = &cmd.args[0];
        match first {
            Term::Field { ident, .. } => {
                self.at(At::Term(first));
                return self.eval_field_chain(dot, dot.clone(), first, ident, &cmd.args, final_value);
            }
            Term::Chain { node, fields, .. } => {
                return self.eval_chain(dot, first, node, fields, &cmd.args, final_value);
            }
            Term::Identifier { name, .. } => {
                return self.eval_function(dot, first, name, At::Command(cmd), &cmd.args, final_value);
            }
            Term::Pipe(pipe) => {
                self.not_a_function(&cmd.args, &final_value)?;
                return self.eval_pipeline(dot, Some(pipe));
            }
            Term::Variable { ident, .. } => {
                return self.eval_variable(dot, first, ident, &cmd.args, final_value);
            }
            _ => {}
        }
        self.at(At::Term(first));
        self.not_a_function(&cmd.args, &final_value)?;
        match first {
            Term::Bool { value, .. } => Ok(Cow::Owned(Value::Bool(*value))),
            Term::Dot { .. } => Ok(dot.val.clone()),
            Term::Nil { .. } => self.error("nil is not a command"),
            Term::Number { number, .. } => self.ideal_constant(first, number),
            Term::String { text, .. } => Ok(Cow::Owned(Value::String(text.clone()))),
            _ => self.error(format!(
                "can't evaluate command {}",
                gofmt::quote(&first.to_string())
            )),
        }
    }

    fn ideal_constant(&mut self, term: &'a Term, number: &Number) -> ExecResult<Val<'a>> {
        self.at(At::Term(term));
        let text = number.text.as_str();
        let is_hex_int = text.len() > 2
            && text.starts_with('0')
            && matches!(text.as_bytes()[1], b'x' | b'X')
            && !text.contains(['p', 'P']);
        let is_rune = text.starts_with('\'');
        if let Some(float) = number.float
            && !is_hex_int
            && !is_rune
            && text.contains(['.', 'e', 'E', 'p', 'P'])
        {
            return Ok(Cow::Owned(Value::Float(float)));
        }
        if let Some(int) = number.int {
            return Ok(Cow::Owned(Value::Int(int)));
        }
        if number.is_uint {
            return self.error(format!("{text} overflows int"));
        }
        Ok(Cow::Owned(Value::Nil))
    }

    fn eval_chain(
        &mut self,
        dot: &Dot<'a>,
        chain: &'a Term,
        node: &'a Term,
        fields: &'a [String],
        args: &'a [Term],
        final_value: Option<Val<'a>>,
    ) -> ExecResult<Val<'a>> {
        self.at(At::Term(chain));
        if let Term::Nil { .. } = node {
            return self.error(format!("indirection through explicit nil in {chain}"));
        }
        let receiver = self.eval_arg(dot, ArgType::Any, node)?;
        self.eval_field_chain(dot, Dot::concrete(receiver), chain, fields, args, final_value)
    }

    fn eval_variable(
        &mut self,
        dot: &Dot<'a>,
        variable: &'a Term,
        ident: &'a [String],
        args: &'a [Term],
        final_value: Option<Val<'a>>,
    ) -> ExecResult<Val<'a>> {
        self.at(At::Term(variable));
        let value = self.var_value(&ident[0])?;
        if ident.len() == 1 {
            self.not_a_function(args, &final_value)?;
            return Ok(value.val);
        }
        self.eval_field_chain(dot, value, variable, &ident[1..], args, final_value)
    }

    fn eval_field_chain(
        &mut self,
        dot: &Dot<'a>,
        receiver: Dot<'a>,
        node: &'a Term,
        ident: &'a [String],
        args: &'a [Term],
        final_value: Option<Val<'a>>,
    ) -> ExecResult<Val<'a>> {
        let mut receiver = receiver;
        let last = ident.len() - 1;
        for name in &ident[..last] {
            receiver = self.eval_field(dot, name, node, &[], None, receiver)?;
        }
        Ok(self
            .eval_field(dot, &ident[last], node, args, final_value, receiver)?
            .val)
    }

    fn eval_field(
        &mut self,
        dot: &Dot<'a>,
        name: &str,
        node: &'a Term,
        args: &'a [Term],
        final_value: Option<Val<'a>>,
        receiver: Dot<'a>,
    ) -> ExecResult<Dot<'a>> {
        let has_args = args.len() > 1 || final_value.is_some();
        let receiver_iface = receiver.iface;
        let receiver = receiver.val;
        let receiver_type = if receiver_iface {
            "interface {}"
        } else {
            receiver.type_name()
        };
        if let Value::Object(object) = receiver.as_ref()
            && object.has_method(name)
        {
            let object = object.clone();
            let call_args = if args.is_empty() { args } else { &args[1..] };
            let mut values = Vec::with_capacity(call_args.len() + 1);
            for arg in call_args {
                values.push(self.eval_arg(dot, ArgType::Any, arg)?.into_owned());
            }
            if let Some(final_value) = final_value {
                values.push(final_value.into_owned());
            }
            return match object.method(name, &values) {
                Some(Ok(value)) => self.checked_result(value).map(Dot::concrete),
                Some(Err(message)) => {
                    self.at(At::Term(node));
                    self.error(format!("error calling {name}: {message}"))
                }
                None => self.error(format!(
                    "can't evaluate field {name} in type {}",
                    object.type_name()
                )),
            };
        }
        match receiver.as_ref().plain() {
            Value::Nil => {
                if receiver_iface {
                    return self.error(format!("nil pointer evaluating interface {{}}.{name}"));
                }
                if self.template.missing_key == MissingKey::Error {
                    return self.error(format!("nil data; no entry for key {}", gofmt::quote(name)));
                }
                Ok(Dot::concrete(Cow::Owned(Value::Nil)))
            }
            Value::Map(_) | Value::StringMap(_) => {
                if has_args {
                    return self.error(format!("{name} is not a method but has arguments"));
                }
                let is_string_map = matches!(receiver.as_ref().plain(), Value::StringMap(_));
                if let Some(found) = map_entry(&receiver, name) {
                    return Ok(Dot {
                        val: found,
                        iface: !is_string_map,
                    });
                }
                match self.template.missing_key {
                    MissingKey::Default => Ok(Dot::concrete(Cow::Owned(Value::Nil))),
                    MissingKey::Zero if is_string_map => {
                        Ok(Dot::concrete(Cow::Owned(Value::String(String::new()))))
                    }
                    MissingKey::Zero => Ok(Dot {
                        val: Cow::Owned(Value::Nil),
                        iface: true,
                    }),
                    MissingKey::Error => {
                        self.error(format!("map has no entry for key {}", gofmt::quote(name)))
                    }
                }
            }
            Value::Object(object) => match object.field(name) {
                Some(value) => {
                    if has_args {
                        return self.error(format!("{name} has arguments but cannot be invoked as function"));
                    }
                    Ok(Dot::concrete(Cow::Owned(value)))
                }
                None => self.error(format!(
                    "can't evaluate field {name} in type {}",
                    object.type_name()
                )),
            },
            _ => self.error(format!("can't evaluate field {name} in type {receiver_type}")),
        }
    }

    fn lookup_function(&self, name: &str) -> Option<Callable<'a>> {
        if let Some(function) = self.template.functions().get(name) {
            return Some(Callable::Native(function));
        }
        Builtin::lookup(name).map(Callable::Builtin)
    }

    fn eval_function(
        &mut self,
        dot: &Dot<'a>,
        identifier: &'a Term,
        name: &'a str,
        node: At<'a>,
        args: &'a [Term],
        final_value: Option<Val<'a>>,
    ) -> ExecResult<Val<'a>> {
        self.at(At::Term(identifier));
        let Some(callable) = self.lookup_function(name) else {
            return self.error(format!("{} is not a defined function", gofmt::quote(name)));
        };
        self.eval_call(dot, callable, node, name, args, final_value)
    }

    fn eval_call(
        &mut self,
        dot: &Dot<'a>,
        callable: Callable<'a>,
        node: At<'a>,
        name: &str,
        args: &'a [Term],
        final_value: Option<Val<'a>>,
    ) -> ExecResult<Val<'a>> {
        let args = if args.is_empty() { args } else { &args[1..] };
        let signature = match callable {
            Callable::Builtin(builtin) => builtin.signature(),
            Callable::Native(function) => function.signature.clone(),
        };
        let num_in = args.len() + usize::from(final_value.is_some());
        let num_fixed = signature.params.len();
        if signature.variadic.is_some() {
            if num_in < num_fixed {
                return self.error(format!(
                    "wrong number of args for {name}: want at least {num_fixed} got {}",
                    args.len()
                ));
            }
        } else if num_in != num_fixed {
            return self.error(format!(
                "wrong number of args for {name}: want {num_fixed} got {num_in}"
            ));
        }

        if let Callable::Builtin(builtin @ (Builtin::And | Builtin::Or)) = callable {
            let stop_when = builtin == Builtin::Or;
            let mut value: Val<'a> = Cow::Owned(Value::Nil);
            for arg in args {
                value = self.eval_arg(dot, ArgType::Any, arg)?;
                if value.is_true() == stop_when {
                    return Ok(value);
                }
            }
            if let Some(final_value) = final_value {
                value = final_value;
            }
            return Ok(value);
        }

        let mut values: Vec<Val<'a>> = Vec::with_capacity(num_in);
        for (index, arg) in args.iter().enumerate() {
            values.push(self.eval_arg(dot, signature.param(index), arg)?);
        }
        if let Some(final_value) = final_value {
            let final_type = signature.param(num_in - 1);
            values.push(self.validate_type(final_value, final_type)?);
        }
        let result = match callable {
            Callable::Builtin(builtin) => self.call_builtin(builtin, values),
            Callable::Native(function) => {
                let owned: Vec<Value> = values.into_iter().map(Cow::into_owned).collect();
                function.call(&owned).map(Cow::Owned)
            }
        };
        match result {
            Ok(value) => {
                if let Value::String(s) = value.as_ref() {
                    self.check_size(s.len())?;
                }
                Ok(value)
            }
            Err(message) => {
                self.at(node);
                self.error(format!("error calling {name}: {message}"))
            }
        }
    }

    fn checked_result(&self, value: Value) -> ExecResult<Val<'a>> {
        if let Value::String(s) = &value {
            self.check_size(s.len())?;
        }
        Ok(Cow::Owned(value))
    }

    fn validate_type(&self, value: Val<'a>, typ: ArgType) -> ExecResult<Val<'a>> {
        if let Value::Nil = value.as_ref() {
            if typ.can_be_nil() {
                return Ok(value);
            }
            return self.error(format!("invalid value; expected {}", typ.go_name()));
        }
        let ok = match typ {
            ArgType::Any => true,
            ArgType::String => matches!(value.as_ref(), Value::String(_)),
            ArgType::Float => matches!(value.as_ref(), Value::Float(_)),
            ArgType::Int => matches!(value.as_ref(), Value::Int(_)),
            ArgType::Bool => matches!(value.as_ref(), Value::Bool(_)),
            ArgType::Named(name) => value.type_name() == name,
        };
        if !ok {
            return self.error(format!(
                "wrong type for value; expected {}; got {}",
                typ.go_name(),
                value.type_name()
            ));
        }
        Ok(value)
    }

    fn eval_arg(&mut self, dot: &Dot<'a>, typ: ArgType, term: &'a Term) -> ExecResult<Val<'a>> {
        self.at(At::Term(term));
        match term {
            Term::Dot { .. } => return self.validate_type(dot.val.clone(), typ),
            Term::Nil { .. } => {
                if typ.can_be_nil() {
                    return Ok(Cow::Owned(Value::Nil));
                }
                return self.error(format!("cannot assign nil to {}", typ.go_name()));
            }
            Term::Field { ident, .. } => {
                let value = self.eval_field_chain(dot, dot.clone(), term, ident, &[], None)?;
                return self.validate_type(value, typ);
            }
            Term::Variable { ident, .. } => {
                let value = self.eval_variable(dot, term, ident, &[], None)?;
                return self.validate_type(value, typ);
            }
            Term::Pipe(pipe) => {
                let value = self.eval_pipeline(dot, Some(pipe))?;
                return self.validate_type(value, typ);
            }
            Term::Identifier { name, .. } => {
                let value = self.eval_function(dot, term, name, At::Term(term), &[], None)?;
                return self.validate_type(value, typ);
            }
            Term::Chain { node, fields, .. } => {
                let value = self.eval_chain(dot, term, node, fields, &[], None)?;
                return self.validate_type(value, typ);
            }
            _ => {}
        }
        match (typ, term) {
            (ArgType::Bool, Term::Bool { value, .. }) => Ok(Cow::Owned(Value::Bool(*value))),
            (ArgType::Bool, _) => self.error(format!("expected bool; found {term}")),
            (ArgType::Float, Term::Number { number, .. }) if number.float.is_some() => {
                Ok(Cow::Owned(Value::Float(number.float.unwrap_or_default())))
            }
            (ArgType::Float, _) => self.error(format!("expected float; found {term}")),
            (ArgType::Int, Term::Number { number, .. }) if number.int.is_some() => {
                Ok(Cow::Owned(Value::Int(number.int.unwrap_or_default())))
            }
            (ArgType::Int, _) => self.error(format!("expected integer; found {term}")),
            (ArgType::String, Term::String { text, .. }) => Ok(Cow::Owned(Value::String(text.clone()))),
            (ArgType::String, _) => self.error(format!("expected string; found {term}")),
            (ArgType::Any, Term::Bool { value, .. }) => Ok(Cow::Owned(Value::Bool(*value))),
            (ArgType::Any, Term::Number { number, .. }) => self.ideal_constant(term, number),
            (ArgType::Any, Term::String { text, .. }) => Ok(Cow::Owned(Value::String(text.clone()))),
            (typ, _) => self.error(format!("can't handle {term} for arg of type {}", typ.go_name())),
        }
    }

    // ---- builtins ----

    fn call_builtin(&mut self, builtin: Builtin, args: Vec<Val<'a>>) -> Result<Val<'a>, String> {
        let owned = |value: Value| -> Result<Val<'a>, String> { Ok(Cow::Owned(value)) };
        match builtin {
            // Handled in eval_call; unreachable with a valid signature.
            Builtin::And | Builtin::Or => owned(Value::Nil),
            Builtin::Not => owned(Value::Bool(!args[0].is_true())),
            Builtin::Len => builtin_len(&args[0]).map(|len| Cow::Owned(Value::Int(len as i64))),
            Builtin::Index => builtin_index(args),
            Builtin::Slice => builtin_slice(args),
            Builtin::Print => owned(Value::String(gofmt::sprint(&args))),
            Builtin::Println => owned(Value::String(gofmt::sprintln(&args))),
            Builtin::Printf => {
                let format = match args[0].as_ref() {
                    Value::String(format) => format.clone(),
                    _ => String::new(),
                };
                owned(Value::String(gofmt::sprintf(&format, &args[1..])))
            }
            Builtin::Html => owned(Value::String(crate::funcs::html_escape(&eval_args(&args)))),
            Builtin::Js => owned(Value::String(crate::funcs::js_escape(&eval_args(&args)))),
            Builtin::UrlQuery => owned(Value::String(crate::funcs::url_query_escape(&eval_args(&args)))),
            Builtin::Eq => {
                if args.len() < 2 {
                    return Err("missing argument for comparison".to_owned());
                }
                for other in &args[1..] {
                    if go_eq(&args[0], other)? {
                        return owned(Value::Bool(true));
                    }
                }
                owned(Value::Bool(false))
            }
            Builtin::Ne => owned(Value::Bool(!go_eq(&args[0], &args[1])?)),
            Builtin::Lt => owned(Value::Bool(go_lt(&args[0], &args[1])?)),
            Builtin::Le => owned(Value::Bool(
                go_lt(&args[0], &args[1])? || go_eq(&args[0], &args[1])?,
            )),
            Builtin::Gt => owned(Value::Bool(
                !(go_lt(&args[0], &args[1])? || go_eq(&args[0], &args[1])?),
            )),
            Builtin::Ge => owned(Value::Bool(!go_lt(&args[0], &args[1])?)),
            // Values here are never functions.
            Builtin::Call => match args[0].as_ref() {
                Value::Nil => Err("call of nil".to_owned()),
                other => Err(format!("non-function of type {}", other.type_name())),
            },
        }
    }
}

impl fmt::Debug for State<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("exec_name", &self.exec_name)
            .field("depth", &self.depth)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// The (index, element) pairs `range` visits: list positions, or map keys in order. Elements of
/// lists and `map[string]interface {}` are interface values, as in Go.
fn range_elements<'a>(value: &Val<'a>) -> Vec<(Value, Dot<'a>)> {
    let iface = !matches!(value.as_ref().plain(), Value::StringMap(_));
    range_values(value)
        .into_iter()
        .map(|(index, val)| (index, Dot { val, iface }))
        .collect()
}

fn range_values<'a>(value: &Val<'a>) -> Vec<(Value, Val<'a>)> {
    fn collect<'v>(
        plain: &'v Value,
        wrap: &dyn Fn(&'v Value) -> Cow<'v, Value>,
    ) -> Vec<(Value, Cow<'v, Value>)> {
        match plain {
            Value::List(list) => list
                .iter()
                .enumerate()
                .map(|(index, element)| (Value::Int(index as i64), wrap(element)))
                .collect(),
            Value::Map(map) => map
                .iter()
                .map(|(key, element)| (Value::String(key.clone()), wrap(element)))
                .collect(),
            Value::StringMap(map) => map
                .iter()
                .map(|(key, element)| {
                    (
                        Value::String(key.clone()),
                        Cow::Owned(Value::String(element.clone())),
                    )
                })
                .collect(),
            _ => Vec::new(),
        }
    }
    match value {
        Cow::Borrowed(borrowed) => collect(borrowed.plain(), &|element| Cow::Borrowed(element)),
        Cow::Owned(owned) => collect(owned.plain(), &|element| Cow::Owned(element.clone()))
            .into_iter()
            .map(|(index, element)| (index, Cow::Owned(element.into_owned())))
            .collect(),
    }
}

/// `receiver[name]` for a map (or an object over a map), borrowing when the receiver is borrowed.
fn map_entry<'a>(receiver: &Val<'a>, name: &str) -> Option<Val<'a>> {
    match receiver {
        Cow::Borrowed(borrowed) => match borrowed.plain() {
            Value::Map(map) => map.get(name).map(Cow::Borrowed),
            Value::StringMap(map) => map
                .get(name)
                .map(|value| Cow::Owned(Value::String(value.clone()))),
            _ => None,
        },
        Cow::Owned(owned) => match owned.plain() {
            Value::Map(map) => map.get(name).map(|value| Cow::Owned(value.clone())),
            Value::StringMap(map) => map
                .get(name)
                .map(|value| Cow::Owned(Value::String(value.clone()))),
            _ => None,
        },
    }
}

fn builtin_len(item: &Value) -> Result<usize, String> {
    match item.plain() {
        Value::String(s) => Ok(s.len()),
        Value::List(list) => Ok(list.len()),
        Value::Map(map) => Ok(map.len()),
        Value::StringMap(map) => Ok(map.len()),
        // What Go's reflection panics with, recovered into the call's error.
        Value::Nil => Err("reflect: call of reflect.Value.Type on zero Value".to_owned()),
        other => Err(format!("len of type {}", other.type_name())),
    }
}

/// Go's `indexArg`: an int index no greater than `cap`.
fn index_arg(index: &Value, cap: usize) -> Result<usize, String> {
    let x = match index {
        Value::Int(x) => *x,
        Value::Nil => return Err("cannot index slice/array with nil".to_owned()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name()
            ));
        }
    };
    if x < 0 || x as u64 > cap as u64 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn builtin_index<'a>(args: Vec<Val<'a>>) -> Result<Val<'a>, String> {
    let mut args = args.into_iter();
    let Some(mut item) = args.next() else {
        return Err("index of untyped nil".to_owned());
    };
    if let Value::Nil = item.as_ref() {
        return Err("index of untyped nil".to_owned());
    }
    // Indexing a string yields a byte: Go's uint8, which cannot be indexed further.
    let mut is_byte = false;
    for index in args {
        if is_byte {
            return Err("can't index item of type uint8".to_owned());
        }
        item = match item.as_ref().plain() {
            Value::List(list) => {
                let x = index_arg(&index, list.len())?;
                if x == list.len() {
                    return Err("reflect: slice index out of range".to_owned());
                }
                project(item, |plain| match plain {
                    Value::List(list) => list.get(x),
                    _ => None,
                })
            }
            Value::String(s) => {
                let x = index_arg(&index, s.len())?;
                is_byte = true;
                match s.as_bytes().get(x) {
                    Some(byte) => Cow::Owned(Value::Int(i64::from(*byte))),
                    None => return Err("reflect: string index out of range".to_owned()),
                }
            }
            Value::Map(_) | Value::StringMap(_) => {
                let key = match index.as_ref() {
                    Value::String(key) => key.clone(),
                    Value::Nil => return Err("value is nil; should be of type string".to_owned()),
                    other => {
                        return Err(format!("value has type {}; should be string", other.type_name()));
                    }
                };
                let is_string_map = matches!(item.as_ref().plain(), Value::StringMap(_));
                match map_entry(&item, &key) {
                    Some(found) => found,
                    None if is_string_map => Cow::Owned(Value::String(String::new())),
                    None => Cow::Owned(Value::Nil),
                }
            }
            Value::Nil => return Err("index of nil pointer".to_owned()),
            other => return Err(format!("can't index item of type {}", other.type_name())),
        };
    }
    Ok(item)
}

/// A borrowed-or-owned projection into a value.
fn project<'a>(value: Val<'a>, select: impl Fn(&Value) -> Option<&Value>) -> Val<'a> {
    match value {
        Cow::Borrowed(borrowed) => match select(borrowed.plain()) {
            Some(selected) => Cow::Borrowed(selected),
            None => Cow::Owned(Value::Nil),
        },
        Cow::Owned(owned) => Cow::Owned(select(owned.plain()).cloned().unwrap_or_default()),
    }
}

fn builtin_slice<'a>(args: Vec<Val<'a>>) -> Result<Val<'a>, String> {
    let item = &args[0];
    let indexes = &args[1..];
    if let Value::Nil = item.as_ref() {
        return Err("slice of untyped nil".to_owned());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match item.as_ref().plain() {
        Value::String(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".to_owned());
            }
            s.len()
        }
        Value::List(list) => list.len(),
        other => return Err(format!("can't slice item of type {}", other.type_name())),
    };
    let mut bounds = [0, len, len];
    for (position, index) in indexes.iter().enumerate() {
        bounds[position] = index_arg(index, len)?;
    }
    if bounds[0] > bounds[1] {
        return Err(format!("invalid slice index: {} > {}", bounds[0], bounds[1]));
    }
    if indexes.len() == 3 && bounds[1] > bounds[2] {
        return Err(format!("invalid slice index: {} > {}", bounds[1], bounds[2]));
    }
    Ok(Cow::Owned(match item.as_ref().plain() {
        Value::String(s) => {
            Value::String(String::from_utf8_lossy(&s.as_bytes()[bounds[0]..bounds[1]]).into_owned())
        }
        Value::List(list) => Value::List(list[bounds[0]..bounds[1]].to_vec()),
        _ => Value::Nil,
    }))
}

/// Go's `evalArgs` for `html`, `js` and `urlquery`: one string as is, otherwise `fmt.Sprint` of
/// the arguments with missing values printed as `<no value>`.
fn eval_args(args: &[Val<'_>]) -> String {
    if let [single] = args
        && let Value::String(s) = single.as_ref()
    {
        return s.clone();
    }
    let printable: Vec<Value> = args
        .iter()
        .map(|arg| match arg.as_ref() {
            Value::Nil => Value::String("<no value>".to_owned()),
            other => other.clone(),
        })
        .collect();
    gofmt::sprint(&printable)
}

/// Go's comparison kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BasicKind {
    Invalid,
    Bool,
    Int,
    Float,
    String,
}

fn basic_kind(value: &Value) -> BasicKind {
    match value {
        Value::Bool(_) => BasicKind::Bool,
        Value::Int(_) => BasicKind::Int,
        Value::Float(_) => BasicKind::Float,
        Value::String(_) => BasicKind::String,
        _ => BasicKind::Invalid,
    }
}

/// Go's `eq` for one pair.
fn go_eq(a: &Value, b: &Value) -> Result<bool, String> {
    let (a, b) = (a.plain(), b.plain());
    let (kind_a, kind_b) = (basic_kind(a), basic_kind(b));
    if kind_a != kind_b {
        if !matches!(a, Value::Nil) && !matches!(b, Value::Nil) {
            return Err("incompatible types for comparison".to_owned());
        }
        return Ok(false);
    }
    Ok(match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Nil, _) | (_, Value::Nil) => matches!(a, Value::Nil) && matches!(b, Value::Nil),
        (Value::Object(x), Value::Object(y)) if x.type_name() == y.type_name() => {
            std::sync::Arc::ptr_eq(x, y)
        }
        _ if std::mem::discriminant(a) != std::mem::discriminant(b) && a.type_name() != b.type_name() => {
            return Err(format!(
                "non-comparable types {}: {}, {}: {}",
                gofmt::sprintf("%s", &[a]),
                a.type_name(),
                b.type_name(),
                gofmt::format_v(b)
            ));
        }
        _ => {
            return Err(format!(
                "non-comparable type {}: {}",
                gofmt::sprintf("%s", &[b]),
                b.type_name()
            ));
        }
    })
}

/// Go's `lt`.
fn go_lt(a: &Value, b: &Value) -> Result<bool, String> {
    let (a, b) = (a.plain(), b.plain());
    let (kind_a, kind_b) = (basic_kind(a), basic_kind(b));
    if kind_a == BasicKind::Invalid || kind_b == BasicKind::Invalid {
        return Err("invalid type for comparison".to_owned());
    }
    if kind_a != kind_b {
        return Err("incompatible types for comparison".to_owned());
    }
    match (a, b) {
        (Value::Int(x), Value::Int(y)) => Ok(x < y),
        (Value::Float(x), Value::Float(y)) => Ok(x < y),
        (Value::String(x), Value::String(y)) => Ok(x < y),
        _ => Err("invalid type for comparison".to_owned()),
    }
}
