//! Ports and port namespaces: what a process accepts and emits, and how values are checked.
//!
//! This is plumpy's `Port` / `InputPort` / `OutputPort` / `PortNamespace` model over JSON values.
//! **Architecture invariant:** this module knows nothing of WebAssembly. Where a plugin takes part
//! (a guest validator, a computed default) the functions here say *what* to ask the plugin and the
//! caller asks it; so everything here is pure and tested directly.
//!
//! Paths are dotted: `inputs.options.greeting` is port `greeting` in namespace `options` of the
//! root namespace `inputs`. Errors carry the full path, as plumpy's breadcrumbs do.

mod absorb;
mod describe;
mod types;
mod validate;

use indexmap::IndexMap;
use serde::Serialize;
use serde_json::Value;

pub use absorb::{NamespaceOptions, Rules};
pub use types::{ValidTypes, ValueType};
pub use validate::{DefaultRequest, GuestCheck, ValidationError};

/// The separator of port paths.
pub const SEPARATOR: char = '.';

/// Where a port's default comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefaultValue {
    /// This value, checked against the port when the spec is built.
    Value(Value),
    /// Computed by the plugin, only when no value was given (plumpy's callable default).
    Computed,
}

/// Where a port copied from another plugin's spec came from (by `expose`): its validator and
/// computed default belong to that plugin, under that path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Origin {
    /// The plugin's name.
    pub plugin: String,
    /// The port's full path in that plugin's spec, e.g. `inputs.a`.
    pub path: String,
}

/// A single-value port.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Port {
    /// Its name in its namespace.
    pub name: String,
    /// The types it accepts.
    pub valid_types: ValidTypes,
    /// Whether a value must be present (once defaults are applied).
    pub required: bool,
    /// Its default, if any.
    pub default: Option<DefaultValue>,
    /// What it is for.
    pub help: Option<String>,
    /// Whether the plugin validates this port's value.
    pub validator: bool,
    /// Set when the port was exposed from another plugin.
    pub origin: Option<Origin>,
}

/// A namespace of ports: a JSON object whose keys are declared ports, or any keys if dynamic.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PortNamespace {
    /// Its name in its parent (`inputs` or `outputs` for a root namespace).
    pub name: String,
    /// Its ports and namespaces, in declaration order.
    pub ports: IndexMap<String, PortEntry>,
    /// The type of undeclared values; any non-empty set makes the namespace dynamic.
    pub valid_types: ValidTypes,
    /// Whether keys that are not declared ports are accepted.
    pub dynamic: bool,
    /// Whether the namespace is validated even when no value was given for it (as in plumpy,
    /// namespaces are required by default; an optional one that is absent or empty is skipped).
    pub required: bool,
    /// What it is for.
    pub help: Option<String>,
    /// Whether the plugin validates this namespace's whole value (after its ports).
    pub validator: bool,
    /// Whether defaults inside are filled when no value was given for the namespace.
    pub populate_defaults: bool,
    /// Set when the namespace was exposed from another plugin.
    pub origin: Option<Origin>,
}

/// A port or a namespace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PortEntry {
    /// A single-value port.
    Port(Port),
    /// A namespace of ports.
    Namespace(PortNamespace),
}

/// One declaration, as a plugin makes it: a port or a namespace at a dotted path.
#[derive(Debug, Clone, PartialEq)]
pub struct PortDecl {
    /// Dotted path below the namespace it is declared in; empty for that namespace itself.
    pub path: String,
    /// A namespace rather than a port.
    pub namespace: bool,
    /// The types accepted (for a namespace: of undeclared values, which makes it dynamic).
    pub valid_types: ValidTypes,
    /// Whether a value must be present.
    pub required: bool,
    /// The default, if any.
    pub default: Option<DefaultValue>,
    /// What it is for.
    pub help: Option<String>,
    /// Whether the plugin validates the value.
    pub validator: bool,
    /// Namespace only: whether undeclared keys are accepted.
    pub dynamic: bool,
    /// Namespace only: whether defaults inside are filled when it was not given.
    pub populate_defaults: bool,
}

/// A mistake in a declaration: the spec cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SpecError {
    #[error("cannot declare '{path}': '{port}' is a port, not a namespace")]
    /// A declaration reaches below a port.
    NotANamespace {
        /// The declaration's full path.
        path: String,
        /// The port on the way.
        port: String,
    },
    #[error("port '{path}' is declared twice")]
    /// A port is declared twice.
    Duplicate {
        /// Its full path.
        path: String,
    },
    #[error("the default of port '{path}' is invalid: {message}")]
    /// A fixed default does not fit its port.
    InvalidDefault {
        /// The port's full path.
        path: String,
        /// Why.
        message: String,
    },
    #[error("port '{path}' has an empty name component")]
    /// A path has an empty component (`a..b`).
    EmptyName {
        /// The path.
        path: String,
    },
    #[error("port '{path}': the name '{name}' is reserved")]
    /// A name the descriptions use for themselves.
    ReservedName {
        /// The path.
        path: String,
        /// The reserved name.
        name: String,
    },
    #[error("exposing into '{path}': include and exclude rules cannot be given together")]
    /// An expose names both ports to include and ports to exclude.
    IncludeAndExclude {
        /// The namespace exposed into.
        path: String,
    },
}

/// The key under which a namespace's own attributes appear in its description.
pub const ATTRS_KEY: &str = "_attrs";

impl PortNamespace {
    /// An empty, non-dynamic, required namespace.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ports: IndexMap::new(),
            valid_types: ValidTypes::default(),
            dynamic: false,
            required: true,
            help: None,
            validator: false,
            populate_defaults: true,
            origin: None,
        }
    }

    /// Build a namespace from declarations, in order.
    pub fn from_decls<'a>(
        name: &str,
        decls: impl IntoIterator<Item = &'a PortDecl>,
    ) -> Result<Self, SpecError> {
        let mut namespace = Self::new(name);
        for decl in decls {
            namespace.declare(decl)?;
        }
        Ok(namespace)
    }

    /// Add a port or configure a namespace, creating the namespaces along its path (S24).
    ///
    /// Declaring a namespace that exists already updates it; as in plumpy, a namespace that was
    /// made dynamic (by `dynamic` or a valid type) stays dynamic.
    pub fn declare(&mut self, decl: &PortDecl) -> Result<(), SpecError> {
        let full = join(&self.name, &decl.path);
        let mut components: Vec<&str> = if decl.path.is_empty() {
            Vec::new()
        } else {
            decl.path.split(SEPARATOR).collect()
        };
        if components.iter().any(|c| c.is_empty()) {
            return Err(SpecError::EmptyName { path: full });
        }
        if let Some(reserved) = components.iter().find(|c| **c == ATTRS_KEY) {
            return Err(SpecError::ReservedName {
                path: full,
                name: reserved.to_string(),
            });
        }
        let last = if decl.namespace {
            None
        } else {
            components.pop()
        };
        let namespace = self.namespace_at(&components, &full)?;

        match last {
            None => {
                namespace.valid_types = decl.valid_types.clone();
                // A valid type implies dynamic, and dynamic is never taken back.
                namespace.dynamic |= decl.dynamic || !decl.valid_types.0.is_empty();
                namespace.required = decl.required;
                namespace.help = decl.help.clone();
                namespace.validator = decl.validator;
                namespace.populate_defaults = decl.populate_defaults;
                namespace.origin = None;
                Ok(())
            }
            Some(name) => {
                if namespace.ports.contains_key(name) {
                    return Err(SpecError::Duplicate { path: full });
                }
                if let Some(DefaultValue::Value(value)) = &decl.default
                    && !decl.valid_types.accepts(value)
                {
                    return Err(SpecError::InvalidDefault {
                        path: full,
                        message: validate::wrong_type(value, &decl.valid_types),
                    });
                }
                let port = Port {
                    name: name.to_string(),
                    valid_types: decl.valid_types.clone(),
                    required: decl.required && decl.default.is_none(),
                    default: decl.default.clone(),
                    help: decl.help.clone(),
                    validator: decl.validator,
                    origin: None,
                };
                namespace
                    .ports
                    .insert(name.to_string(), PortEntry::Port(port));
                Ok(())
            }
        }
    }

    /// The namespace at `components` below this one, created (plain) where missing.
    fn namespace_at(
        &mut self,
        components: &[&str],
        full: &str,
    ) -> Result<&mut PortNamespace, SpecError> {
        let mut namespace = self;
        let mut walked = namespace.name.clone();
        for component in components {
            walked = join(&walked, component);
            let entry = namespace
                .ports
                .entry(component.to_string())
                .or_insert_with(|| PortEntry::Namespace(PortNamespace::new(*component)));
            namespace = match entry {
                PortEntry::Namespace(ns) => ns,
                PortEntry::Port(_) => {
                    return Err(SpecError::NotANamespace {
                        path: full.to_string(),
                        port: walked,
                    });
                }
            };
        }
        Ok(namespace)
    }

    /// The port or namespace at a dotted path below this namespace.
    pub fn get(&self, path: &str) -> Option<&PortEntry> {
        let (first, rest) = match path.split_once(SEPARATOR) {
            Some((first, rest)) => (first, Some(rest)),
            None => (path, None),
        };
        let entry = self.ports.get(first)?;
        match (entry, rest) {
            (entry, None) => Some(entry),
            (PortEntry::Namespace(ns), Some(rest)) => ns.get(rest),
            (PortEntry::Port(_), Some(_)) => None,
        }
    }
}

impl PortEntry {
    /// The port's or namespace's name.
    pub fn name(&self) -> &str {
        match self {
            PortEntry::Port(p) => &p.name,
            PortEntry::Namespace(ns) => &ns.name,
        }
    }

    /// Where the entry was exposed from, if it was.
    pub fn origin(&self) -> Option<&Origin> {
        match self {
            PortEntry::Port(p) => p.origin.as_ref(),
            PortEntry::Namespace(ns) => ns.origin.as_ref(),
        }
    }
}

/// `a` + `.` + `b`, or whichever is not empty.
pub(crate) fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_string(),
        (_, true) => a.to_string(),
        _ => format!("{a}{SEPARATOR}{b}"),
    }
}

#[cfg(test)]
mod properties;
#[cfg(test)]
mod scenarios;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    /// A port declaration with plumpy's defaults: required, any type.
    pub fn port(path: &str) -> PortDecl {
        PortDecl {
            path: path.to_string(),
            namespace: false,
            valid_types: ValidTypes::default(),
            required: true,
            default: None,
            help: None,
            validator: false,
            dynamic: false,
            populate_defaults: true,
        }
    }

    pub fn namespace(path: &str) -> PortDecl {
        PortDecl {
            namespace: true,
            ..port(path)
        }
    }

    pub fn typed(mut decl: PortDecl, types: &[ValueType]) -> PortDecl {
        decl.valid_types = ValidTypes(types.to_vec());
        decl
    }

    pub fn with_default(mut decl: PortDecl, value: Value) -> PortDecl {
        decl.default = Some(DefaultValue::Value(value));
        decl.required = false;
        decl
    }

    #[test]
    fn dotted_paths_create_nested_namespaces() {
        let ns = PortNamespace::from_decls("inputs", &[port("some.name.space.a")]).unwrap();
        let Some(PortEntry::Port(a)) = ns.get("some.name.space.a") else {
            panic!("no port")
        };
        assert_eq!(a.name, "a");
        assert!(matches!(ns.get("some.name"), Some(PortEntry::Namespace(_))));
        assert!(ns.get("some.other").is_none());
    }

    #[test]
    fn a_port_cannot_hold_ports() {
        let err = PortNamespace::from_decls("inputs", &[port("a"), port("a.b")]).unwrap_err();
        assert_eq!(
            err,
            SpecError::NotANamespace {
                path: "inputs.a.b".into(),
                port: "inputs.a".into()
            }
        );
    }

    #[test]
    fn a_default_of_the_wrong_type_is_refused_at_declaration() {
        let decl = with_default(typed(port("x"), &[ValueType::Str]), json!(4));
        let err = PortNamespace::from_decls("inputs", &[decl]).unwrap_err();
        assert!(err.to_string().contains("inputs.x"), "{err}");
    }

    #[test]
    fn a_valid_type_makes_a_namespace_dynamic() {
        let ns =
            PortNamespace::from_decls("inputs", &[typed(namespace("extra"), &[ValueType::Int])])
                .unwrap();
        let Some(PortEntry::Namespace(extra)) = ns.get("extra") else {
            panic!()
        };
        assert!(extra.dynamic);
    }
}
