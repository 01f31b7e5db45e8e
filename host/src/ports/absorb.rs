//! Copying ports between namespaces: `absorb` (and `expose`, built on it) and `project`.

use serde_json::{Map, Value};

use super::{Origin, PortEntry, PortNamespace, SEPARATOR, SpecError, ValidTypes, join};

/// Which ports to take when absorbing: all, only those included, or all but those excluded.
///
/// Rules name ports by dotted path relative to the absorbed namespace: `a` is port or namespace
/// `a` (all of it); `sub.x` is port `x` of namespace `sub` only.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    /// Only these ports.
    pub include: Option<Vec<String>>,
    /// All ports but these.
    pub exclude: Option<Vec<String>>,
}

/// Attributes of the receiving namespace that override those of the absorbed one (plumpy's
/// `namespace_options`). `None` keeps the absorbed namespace's value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamespaceOptions {
    /// Whether the namespace is required.
    pub required: Option<bool>,
    /// Whether it accepts undeclared keys.
    pub dynamic: Option<bool>,
    /// The types of undeclared values.
    pub valid_types: Option<ValidTypes>,
    /// Its help text.
    pub help: Option<String>,
    /// Whether defaults inside are filled when it was not given.
    pub populate_defaults: Option<bool>,
}

impl Rules {
    /// The rules for namespace `name` inside: those that start with `name.`, stripped of it.
    /// A rule naming `name` itself includes all of it.
    fn below(&self, name: &str) -> Rules {
        let strip = |rules: &Option<Vec<String>>| {
            rules.as_ref().map(|rules| {
                let prefix = format!("{name}{SEPARATOR}");
                rules
                    .iter()
                    .filter_map(|r| r.strip_prefix(&prefix))
                    .map(str::to_string)
                    .collect()
            })
        };
        let include = match &self.include {
            Some(rules) if rules.iter().any(|r| r == name) => None,
            _ => strip(&self.include),
        };
        Rules {
            include,
            exclude: strip(&self.exclude),
        }
    }

    fn excludes(&self, name: &str) -> bool {
        self.exclude
            .as_ref()
            .is_some_and(|rules| rules.iter().any(|r| r == name))
    }

    /// Whether `name` (a port, or a namespace when `namespace`) is taken at all.
    fn includes(&self, name: &str, namespace: bool) -> bool {
        match &self.include {
            None => true,
            Some(rules) if rules.is_empty() => true,
            Some(rules) => rules
                .iter()
                .any(|r| r == name || (namespace && r.starts_with(&format!("{name}{SEPARATOR}")))),
        }
    }
}

impl PortNamespace {
    /// Absorb the ports of `source` into this namespace, and its attributes (dynamic, valid types,
    /// required, help, validator, populate-defaults) unless `options` override them, as plumpy's
    /// `PortNamespace.absorb` does. Ports with a name that exists already are replaced. Returns
    /// the names of the ports absorbed at this level.
    ///
    /// `source_plugin` names the plugin `source` belongs to, when it is another plugin's spec:
    /// every copy then records its [`Origin`], so its validator and computed default are that
    /// plugin's. Copies are deep: later changes to `source` never reach this namespace.
    pub fn absorb(
        &mut self,
        source: &PortNamespace,
        source_plugin: Option<&str>,
        rules: &Rules,
        options: &NamespaceOptions,
    ) -> Result<Vec<String>, SpecError> {
        if rules.include.is_some() && rules.exclude.is_some() {
            return Err(SpecError::IncludeAndExclude {
                path: self.name.clone(),
            });
        }
        self.absorb_at(source, &source.name, source_plugin, rules, options);
        Ok(self.absorbed_names(source, rules))
    }

    fn absorb_at(
        &mut self,
        source: &PortNamespace,
        source_path: &str,
        source_plugin: Option<&str>,
        rules: &Rules,
        options: &NamespaceOptions,
    ) {
        let origin = |path: &str, existing: &Option<Origin>| {
            existing.clone().or_else(|| {
                source_plugin.map(|plugin| Origin {
                    plugin: plugin.to_string(),
                    path: path.to_string(),
                })
            })
        };
        self.dynamic = options.dynamic.unwrap_or(source.dynamic);
        self.valid_types = options
            .valid_types
            .clone()
            .unwrap_or_else(|| source.valid_types.clone());
        self.required = options.required.unwrap_or(source.required);
        self.help = options.help.clone().or_else(|| source.help.clone());
        self.populate_defaults = options
            .populate_defaults
            .unwrap_or(source.populate_defaults);
        self.validator = source.validator;
        self.origin = origin(source_path, &source.origin);

        for (name, entry) in &source.ports {
            if rules.excludes(name) {
                continue;
            }
            let path = join(source_path, name);
            match entry {
                PortEntry::Namespace(inner) => {
                    if !rules.includes(name, true) {
                        continue;
                    }
                    let mut copy = PortNamespace::new(name.as_str());
                    copy.absorb_at(
                        inner,
                        &path,
                        source_plugin,
                        &rules.below(name),
                        &NamespaceOptions::default(),
                    );
                    self.ports.insert(name.clone(), PortEntry::Namespace(copy));
                }
                PortEntry::Port(port) => {
                    if !rules.includes(name, false) {
                        continue;
                    }
                    let mut copy = port.clone();
                    copy.origin = origin(&path, &port.origin);
                    self.ports.insert(name.clone(), PortEntry::Port(copy));
                }
            }
        }
    }

    fn absorbed_names(&self, source: &PortNamespace, rules: &Rules) -> Vec<String> {
        source
            .ports
            .iter()
            .filter(|(name, entry)| {
                !rules.excludes(name)
                    && rules.includes(name, matches!(entry, PortEntry::Namespace(_)))
                    && self.ports.contains_key(*name)
            })
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Absorb `source` into the namespace at the dotted path `namespace` below this one (created
    /// as needed; `""` is this namespace itself): plumpy's `expose_inputs` / `expose_outputs`.
    pub fn expose(
        &mut self,
        namespace: &str,
        source: &PortNamespace,
        source_plugin: &str,
        rules: &Rules,
        options: &NamespaceOptions,
    ) -> Result<Vec<String>, SpecError> {
        let full = join(&self.name, namespace);
        let components: Vec<&str> = if namespace.is_empty() {
            Vec::new()
        } else {
            namespace.split(SEPARATOR).collect()
        };
        if components.iter().any(|c| c.is_empty()) {
            return Err(SpecError::EmptyName { path: full });
        }
        let target = self.namespace_at(&components, &full)?;
        if rules.include.is_some() && rules.exclude.is_some() {
            return Err(SpecError::IncludeAndExclude { path: full });
        }
        target.absorb(source, Some(source_plugin), rules, options)
    }

    /// The part of `values` this namespace knows: the keys that are its ports, recursively
    /// (plumpy's `PortNamespace.project`). Values that are not objects give an empty object.
    pub fn project(&self, values: &Value) -> Value {
        let Some(map) = values.as_object() else {
            return Value::Object(Map::new());
        };
        let mut out = Map::new();
        for (name, value) in map {
            match self.ports.get(name) {
                Some(PortEntry::Namespace(ns)) if value.is_object() => {
                    out.insert(name.clone(), ns.project(value));
                }
                Some(_) => {
                    out.insert(name.clone(), value.clone());
                }
                None => {}
            }
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{namespace, port, typed, with_default};
    use super::super::{PortDecl, ValueType};
    use super::*;
    use serde_json::json;

    /// BaseProcess of plumpy's expose tests: `a='a'`, `b='b'`, dynamic inputs of type str, and a
    /// namespace `sub` with `x` and `y`.
    fn base() -> PortNamespace {
        let decls: Vec<PortDecl> = vec![
            with_default(typed(port("a"), &[ValueType::Str]), json!("a")),
            with_default(typed(port("b"), &[ValueType::Str]), json!("b")),
            typed(namespace(""), &[ValueType::Str]),
            port("sub.x"),
            port("sub.y"),
        ];
        PortNamespace::from_decls("inputs", &decls).unwrap()
    }

    #[test]
    fn exposing_copies_ports_deeply_with_their_origin() {
        let mut base = base();
        let mut inputs = PortNamespace::from_decls("inputs", &[port("c")]).unwrap();
        let names = inputs.expose(
            "base.name.space",
            &base,
            "base",
            &Rules::default(),
            &Default::default(),
        );
        assert_eq!(names.unwrap(), ["a", "b", "sub"]);
        let keys: Vec<_> = inputs.ports.keys().collect();
        assert_eq!(keys, ["c", "base"]);
        let Some(PortEntry::Port(a)) = inputs.get("base.name.space.a") else {
            panic!()
        };
        assert_eq!(
            a.origin,
            Some(Origin {
                plugin: "base".into(),
                path: "inputs.a".into()
            })
        );
        let Some(PortEntry::Namespace(space)) = inputs.get("base.name.space") else {
            panic!()
        };
        assert!(
            space.dynamic,
            "a dynamic namespace stays dynamic when exposed"
        );

        // Later changes to the source do not leak into the copy.
        if let Some(PortEntry::Port(a)) = base.ports.get_mut("a") {
            a.valid_types = ValidTypes(vec![ValueType::Int]);
        }
        let Some(PortEntry::Port(a)) = inputs.get("base.name.space.a") else {
            panic!()
        };
        assert_eq!(a.valid_types, ValidTypes(vec![ValueType::Str]));
    }

    #[test]
    fn include_and_exclude_rules_reach_into_namespaces() {
        let base = base();
        let mut only = PortNamespace::new("inputs");
        let include = Rules {
            include: Some(vec!["a".into(), "sub.x".into()]),
            exclude: None,
        };
        only.expose("", &base, "base", &include, &Default::default())
            .unwrap();
        assert!(only.get("a").is_some() && only.get("sub.x").is_some());
        assert!(only.get("b").is_none() && only.get("sub.y").is_none());

        let mut all_but = PortNamespace::new("inputs");
        let exclude = Rules {
            include: None,
            exclude: Some(vec!["b".into(), "sub.y".into()]),
        };
        all_but
            .expose("", &base, "base", &exclude, &Default::default())
            .unwrap();
        assert!(all_but.get("a").is_some() && all_but.get("sub.x").is_some());
        assert!(all_but.get("b").is_none() && all_but.get("sub.y").is_none());

        let mut whole = PortNamespace::new("inputs");
        let include_ns = Rules {
            include: Some(vec!["sub".into()]),
            exclude: None,
        };
        whole
            .expose("", &base, "base", &include_ns, &Default::default())
            .unwrap();
        assert!(whole.get("sub.x").is_some() && whole.get("sub.y").is_some());
        assert!(whole.get("a").is_none());

        let both = Rules {
            include: Some(vec![]),
            exclude: Some(vec![]),
        };
        let err =
            PortNamespace::new("inputs").expose("", &base, "base", &both, &Default::default());
        assert!(matches!(err, Err(SpecError::IncludeAndExclude { .. })));
    }

    #[test]
    fn namespace_options_override_the_absorbed_attributes() {
        let base = base();
        let mut inputs = PortNamespace::new("inputs");
        let options = NamespaceOptions {
            required: Some(false),
            dynamic: Some(false),
            help: Some("the base inputs".into()),
            ..Default::default()
        };
        inputs
            .expose("base", &base, "base", &Rules::default(), &options)
            .unwrap();
        let Some(PortEntry::Namespace(ns)) = inputs.get("base") else {
            panic!()
        };
        assert!(!ns.required && !ns.dynamic);
        assert_eq!(ns.help.as_deref(), Some("the base inputs"));
        assert_eq!(
            ns.valid_types,
            ValidTypes(vec![ValueType::Str]),
            "not overridden"
        );
    }

    #[test]
    fn project_keeps_what_the_namespace_knows() {
        let ns = PortNamespace::from_decls("inputs", &[port("a"), port("sub.x")]).unwrap();
        let values = json!({"a": 1, "z": 2, "sub": {"x": 3, "y": 4}});
        assert_eq!(ns.project(&values), json!({"a": 1, "sub": {"x": 3}}));
        assert_eq!(ns.project(&json!(5)), json!({}));
    }
}
