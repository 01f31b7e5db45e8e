//! Instrumenting a component so that the host can read and write every mutable global and every
//! linear memory of its core instances: the first step towards memory images for components of
//! every toolchain (`shared/design/polyglot.md`), which today's images (memories only, through
//! the host memory creator) cannot capture faithfully.
//!
//! The component is rewritten once, when it is loaded:
//!
//! 1. each of its core modules also exports every mutable global and every memory it defines
//!    (as `damson:g<index>`, `damson:m<index>`); code and indices are untouched;
//! 2. an added accessor core module imports those from every core instance of such a module, has
//!    a small memory of its own, and is instantiated last;
//! 3. its functions are lifted and exported as the instance [`ACCESSOR`]: `globals-get` /
//!    `globals-set` (every captured global in one `list<u64>`: i32 zero-extended, floats by
//!    their bits) and, per captured memory `<m>`, `size-<m>` (pages), `grow-<m>`,
//!    `read-<m>(offset, len)` and `write-<m>(offset, bytes)`.
//!
//! A nested component with core modules (componentize-qjs's output is made of two) is rewritten
//! the same way, and the accessors of each of its instances are re-exported by the component
//! that instantiates it: the outermost component exports them all, as [`accessor_name`]`(0)`,
//! `(1)`, … (its own first).
//!
//! Refused with a reason: imported or aliased core modules and components (their state cannot
//! be seen), component start functions, v128 and reference globals, 64-bit and shared memories.
//! Tables are not captured: [`super::safety`] refuses components that change them.
//!
//! [`super::image`] takes and restores memory images through the accessor.

use std::collections::HashMap;

use wasm_encoder::{
    Alias, CanonicalFunctionSection, CanonicalOption, CodeSection, ComponentAliasSection,
    ComponentExportKind, ComponentExportSection, ComponentInstanceSection, ComponentTypeSection,
    ComponentValType, ExportKind, ExportSection, Function, FunctionSection, GlobalType,
    ImportSection, InstanceSection, Instruction, MemArg, MemorySection, MemoryType, Module,
    ModuleArg, PrimitiveValType, RawSection, TypeSection, ValType,
};
use wasmparser::{
    CanonicalFunction, ComponentAlias, ComponentExternalKind, ComponentInstance,
    ComponentOuterAliasKind, ComponentTypeRef, ExternalKind, Instance, Parser, Payload, TypeRef,
};

/// The name of the (first) host-private instance an instrumented component exports.
pub const ACCESSOR: &str = "damson-snapshot";

/// The name of the `n`-th accessor instance an instrumented component exports.
pub fn accessor_name(n: usize) -> String {
    match n {
        0 => ACCESSOR.to_string(),
        n => format!("{ACCESSOR}-{n}"),
    }
}
/// Names this rewrite in the compiled-artifact cache: changed whenever its output changes.
pub const VERSION: &str = "instrumented-4";

/// Where the accessor's own memory keeps the lists it passes (its first bytes hold a return
/// area of a pointer and a length).
const BUFFER: i32 = 16;
/// The accessor's own memory, in pages, from the start: room for a list of 64 KiB after the
/// buffer, so that taking an image of an instance near its memory limit never needs more.
pub const ACCESSOR_PAGES: u64 = 2;

/// Why a component cannot be instrumented.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the component cannot be instrumented for memory images: {0}")]
pub struct InstrumentError(String);

fn refuse(why: impl Into<String>) -> InstrumentError {
    InstrumentError(why.into())
}

/// The type of one captured global, as `globals-get` lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GlobalKind {
    /// `i32`, zero-extended.
    I32,
    /// `i64`.
    I64,
    /// `f32`, by its bits, zero-extended.
    F32,
    /// `f64`, by its bits.
    F64,
}

/// What the accessors of an instrumented component capture, in the order their functions use
/// (the accessors' in the order of their names).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Captured {
    /// Every captured global: the core instance that holds it (in its own component) and its
    /// type.
    pub globals: Vec<(u32, GlobalKind)>,
    /// Every captured memory: the core instance that holds it (in its own component).
    pub memories: Vec<u32>,
    /// How many accessor instances the component exports.
    pub accessors: usize,
}

/// A component rewritten for [`ACCESSOR`], and what it captures.
#[derive(Debug, Clone)]
pub struct Instrumented {
    /// The rewritten component.
    pub bytes: Vec<u8>,
    /// What its accessor reads and writes.
    pub captured: Captured,
}

/// What a core module defines that must be captured, by index in its own index spaces.
#[derive(Debug, Clone, Default)]
struct ModuleCaptures {
    globals: Vec<(u32, GlobalKind)>,
    memories: Vec<u32>,
}

/// Rewrite `component` (see the module documentation).
///
/// # Errors
/// [`InstrumentError`] naming what cannot be captured, or when the bytes are not a component.
pub fn instrument(component: &[u8]) -> Result<Instrumented, InstrumentError> {
    let mut out = wasm_encoder::Component::new();
    // The component index space: how many accessors each component exports, `None` for one
    // imported or aliased (whose state cannot be seen).
    let mut components: Vec<Option<Captured>> = Vec::new();
    // The instances of nested components that export accessors, with what those capture.
    let mut nested: Vec<(u32, Captured)> = Vec::new();
    // Index spaces of the component, as far as the additions need them.
    let mut modules: Vec<Option<ModuleCaptures>> = Vec::new();
    let mut core_instances = 0u32;
    let mut core_funcs = 0u32;
    let mut core_memories = 0u32;
    let mut types = 0u32;
    let mut funcs = 0u32;
    let mut instances = 0u32;
    // The core instances of instrumented modules, with what each holds.
    let mut holders: Vec<(u32, ModuleCaptures)> = Vec::new();
    let mut depth = 0usize;
    let mut version_seen = false;

    for payload in Parser::new(0).parse_all(component) {
        let payload = payload.map_err(|e| refuse(format!("it cannot be parsed: {e}")))?;
        if depth > 0 {
            // Inside a core module (read through its own range below).
            match payload {
                Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
                Payload::End(_) => depth -= 1,
                _ => {}
            }
            continue;
        }
        match &payload {
            Payload::Version { encoding, .. } => {
                if *encoding != wasmparser::Encoding::Component {
                    return Err(refuse("it is a core module, not a component"));
                }
                version_seen = true;
                continue;
            }
            Payload::ModuleSection {
                unchecked_range, ..
            } => {
                let module = &component[unchecked_range.clone()];
                let (rewritten, captures) = instrument_module(module, modules.len())?;
                out.section(&RawSection {
                    id: wasm_encoder::ComponentSectionId::CoreModule as u8,
                    data: &rewritten,
                });
                modules.push(Some(captures));
                depth = 1;
                continue;
            }
            Payload::ComponentSection {
                unchecked_range, ..
            } => {
                // One with no core module (as wit-component's wrapper that gives the exports
                // their types) holds no state and is kept as it is.
                let inner = &component[unchecked_range.clone()];
                let (bytes, captured) = if has_core_modules(inner) {
                    let instrumented = instrument(inner).map_err(|e| {
                        refuse(format!("nested component {}: {}", components.len(), e.0))
                    })?;
                    (instrumented.bytes, instrumented.captured)
                } else {
                    (inner.to_vec(), Captured::default())
                };
                out.section(&RawSection {
                    id: wasm_encoder::ComponentSectionId::Component as u8,
                    data: &bytes,
                });
                components.push(Some(captured));
                depth = 1;
                continue;
            }
            Payload::InstanceSection(reader) => {
                for instance in reader.clone() {
                    let instance =
                        instance.map_err(|e| refuse(format!("it cannot be parsed: {e}")))?;
                    if let Instance::Instantiate { module_index, .. } = instance {
                        let captures = seen(
                            &modules,
                            module_index,
                            &format!("core module {module_index}"),
                        )?;
                        if !captures.globals.is_empty() || !captures.memories.is_empty() {
                            holders.push((core_instances, captures.clone()));
                        }
                    }
                    core_instances += 1;
                }
            }
            Payload::ComponentCanonicalSection(reader) => {
                for function in reader.clone() {
                    match function.map_err(|e| refuse(format!("it cannot be parsed: {e}")))? {
                        CanonicalFunction::Lift { .. } => funcs += 1,
                        _ => core_funcs += 1,
                    }
                }
            }
            Payload::ComponentAliasSection(reader) => {
                for alias in reader.clone() {
                    match alias.map_err(|e| refuse(format!("it cannot be parsed: {e}")))? {
                        ComponentAlias::CoreInstanceExport { kind, .. } => match kind {
                            ExternalKind::Func => core_funcs += 1,
                            ExternalKind::Memory => core_memories += 1,
                            _ => {}
                        },
                        ComponentAlias::InstanceExport { kind, .. } => count(
                            kind,
                            &mut modules,
                            &mut components,
                            &mut types,
                            &mut funcs,
                            &mut instances,
                        ),
                        ComponentAlias::Outer { kind, .. } => match kind {
                            ComponentOuterAliasKind::CoreModule => modules.push(None),
                            ComponentOuterAliasKind::Component => components.push(None),
                            ComponentOuterAliasKind::Type => types += 1,
                            _ => {}
                        },
                    }
                }
            }
            Payload::ComponentTypeSection(reader) => types += reader.count(),
            Payload::ComponentInstanceSection(reader) => {
                for instance in reader.clone() {
                    let instance =
                        instance.map_err(|e| refuse(format!("it cannot be parsed: {e}")))?;
                    if let ComponentInstance::Instantiate {
                        component_index, ..
                    } = instance
                    {
                        let captured = seen(
                            &components,
                            component_index,
                            &format!("component {component_index}"),
                        )?;
                        if captured.accessors > 0 {
                            nested.push((instances, captured.clone()));
                        }
                    }
                    instances += 1;
                }
            }
            Payload::ComponentImportSection(reader) => {
                for import in reader.clone() {
                    let import = import.map_err(|e| refuse(format!("it cannot be parsed: {e}")))?;
                    match import.ty {
                        ComponentTypeRef::Module(_) => modules.push(None),
                        ComponentTypeRef::Func(_) => funcs += 1,
                        ComponentTypeRef::Type(_) => types += 1,
                        ComponentTypeRef::Instance(_) => instances += 1,
                        ComponentTypeRef::Component(_) => components.push(None),
                        ComponentTypeRef::Value(_) => {}
                    }
                }
            }
            Payload::ComponentExportSection(reader) => {
                // An export adds an item to its index space, as an alias does.
                for export in reader.clone() {
                    let export = export.map_err(|e| refuse(format!("it cannot be parsed: {e}")))?;
                    count(
                        export.kind,
                        &mut modules,
                        &mut components,
                        &mut types,
                        &mut funcs,
                        &mut instances,
                    );
                }
            }
            Payload::ComponentStartSection { .. } => {
                return Err(refuse("it has a component start function"));
            }
            Payload::End(_) => break,
            _ => {}
        }
        // Everything but the core modules is copied as it is.
        if let Some((id, range)) = payload.as_section() {
            out.section(&RawSection {
                id,
                data: &component[range],
            });
        }
    }
    if !version_seen {
        return Err(refuse("it is not a component"));
    }

    let mut captured = Captured {
        globals: holders
            .iter()
            .flat_map(|(instance, c)| c.globals.iter().map(|(_, kind)| (*instance, *kind)))
            .collect(),
        memories: holders
            .iter()
            .flat_map(|(instance, c)| c.memories.iter().map(|_| *instance))
            .collect(),
        accessors: 0,
    };
    // Every accessor instance to export: this component's own (unless all its state is in
    // nested components), then those of its nested components' instances.
    let mut exported: Vec<u32> = Vec::new();
    if !holders.is_empty() || nested.is_empty() {
        exported.push(own_accessor(
            &mut out,
            &holders,
            captured.memories.len(),
            Spaces {
                modules: modules.len() as u32,
                core_instances,
                core_funcs,
                core_memories,
                types,
                funcs,
                instances,
            },
        ));
        instances += 1;
    }
    let mut aliases = ComponentAliasSection::new();
    for (instance, inner) in &nested {
        for n in 0..inner.accessors {
            aliases.alias(Alias::InstanceExport {
                instance: *instance,
                kind: ComponentExportKind::Instance,
                name: &accessor_name(n),
            });
            exported.push(instances);
            instances += 1;
        }
        captured.globals.extend_from_slice(&inner.globals);
        captured.memories.extend_from_slice(&inner.memories);
    }
    if !nested.is_empty() {
        out.section(&aliases);
    }
    let mut exports = ComponentExportSection::new();
    for (n, instance) in exported.iter().enumerate() {
        exports.export(
            accessor_name(n),
            ComponentExportKind::Instance,
            *instance,
            None,
        );
    }
    out.section(&exports);
    captured.accessors = exported.len();

    Ok(Instrumented {
        bytes: out.finish(),
        captured,
    })
}

/// The sizes of a component's index spaces after its own sections.
struct Spaces {
    modules: u32,
    core_instances: u32,
    core_funcs: u32,
    core_memories: u32,
    types: u32,
    funcs: u32,
    instances: u32,
}

/// Add the accessor of `holders` to `out`, with its functions lifted into a component instance
/// (at index `spaces.instances`, which this returns).
fn own_accessor(
    out: &mut wasm_encoder::Component,
    holders: &[(u32, ModuleCaptures)],
    memories: usize,
    spaces: Spaces,
) -> u32 {
    let Spaces {
        modules,
        core_instances,
        core_funcs,
        core_memories,
        types,
        funcs,
        instances,
    } = spaces;

    // The accessor module and its instance.
    let accessor = accessor_module(holders);
    out.section(&RawSection {
        id: wasm_encoder::ComponentSectionId::CoreModule as u8,
        data: &accessor,
    });
    let accessor_module_index = modules;
    let names: Vec<(String, u32)> = holders
        .iter()
        .map(|(instance, _)| (format!("i{instance}"), *instance))
        .collect();
    let mut instance_section = InstanceSection::new();
    instance_section.instantiate(
        accessor_module_index,
        names
            .iter()
            .map(|(name, instance)| (name.as_str(), ModuleArg::Instance(*instance))),
    );
    out.section(&instance_section);
    let accessor_instance = core_instances;

    // Its memory, realloc and functions, in the component's core index spaces.
    let functions = accessor_functions(memories);
    let mut aliases = ComponentAliasSection::new();
    aliases.alias(Alias::CoreInstanceExport {
        instance: accessor_instance,
        kind: ExportKind::Memory,
        name: "memory",
    });
    aliases.alias(Alias::CoreInstanceExport {
        instance: accessor_instance,
        kind: ExportKind::Func,
        name: "realloc",
    });
    for function in &functions {
        aliases.alias(Alias::CoreInstanceExport {
            instance: accessor_instance,
            kind: ExportKind::Func,
            name: &function.name,
        });
    }
    out.section(&aliases);
    let memory = core_memories;
    let realloc = core_funcs;

    // The lifted functions' types.
    let mut type_section = ComponentTypeSection::new();
    let list_u64 = types;
    type_section
        .defined_type()
        .list(ComponentValType::Primitive(PrimitiveValType::U64));
    let list_u8 = types + 1;
    type_section
        .defined_type()
        .list(ComponentValType::Primitive(PrimitiveValType::U8));
    let mut next_type = types + 2;
    let mut type_of = HashMap::new();
    for function in &functions {
        if type_of.contains_key(&function.signature) {
            continue;
        }
        let u32_ = ComponentValType::Primitive(PrimitiveValType::U32);
        let mut encoder = type_section.function();
        match function.signature {
            Signature::GlobalsGet => encoder
                .params(std::iter::empty::<(&str, ComponentValType)>())
                .result(Some(ComponentValType::Type(list_u64))),
            Signature::GlobalsSet => encoder
                .params([("values", ComponentValType::Type(list_u64))])
                .result(None),
            Signature::Size => encoder
                .params(std::iter::empty::<(&str, ComponentValType)>())
                .result(Some(u32_)),
            Signature::Grow => encoder
                .params([("delta", u32_)])
                .result(Some(ComponentValType::Primitive(PrimitiveValType::S32))),
            Signature::Read => encoder
                .params([("offset", u32_), ("len", u32_)])
                .result(Some(ComponentValType::Type(list_u8))),
            Signature::Write => encoder
                .params([("offset", u32_), ("bytes", ComponentValType::Type(list_u8))])
                .result(None),
        };
        type_of.insert(function.signature, next_type);
        next_type += 1;
    }
    out.section(&type_section);

    let mut canon = CanonicalFunctionSection::new();
    for (i, function) in functions.iter().enumerate() {
        canon.lift(
            realloc + 1 + i as u32,
            type_of[&function.signature],
            [
                CanonicalOption::Memory(memory),
                CanonicalOption::Realloc(realloc),
            ],
        );
    }
    out.section(&canon);

    let mut instance_section = ComponentInstanceSection::new();
    instance_section.export_items(
        functions
            .iter()
            .enumerate()
            .map(|(i, f)| (f.name.as_str(), ComponentExportKind::Func, funcs + i as u32)),
    );
    out.section(&instance_section);
    instances
}

/// What the `index`-th item of an index space (`what`, e.g. "core module 3") captures, if its
/// state can be seen: refused when it is unknown, imported or aliased.
fn seen<'a, T>(space: &'a [Option<T>], index: u32, what: &str) -> Result<&'a T, InstrumentError> {
    space
        .get(index as usize)
        .ok_or_else(|| refuse(format!("{what} is unknown")))?
        .as_ref()
        .ok_or_else(|| {
            refuse(format!(
                "{what} is imported or aliased: its state cannot be seen"
            ))
        })
}

/// Whether `component` has a core module anywhere inside it.
fn has_core_modules(component: &[u8]) -> bool {
    Parser::new(0)
        .parse_all(component)
        .any(|payload| matches!(payload, Ok(Payload::ModuleSection { .. }) | Err(_)))
}

/// Count an item that an alias or an export adds to the component's index spaces.
fn count(
    kind: ComponentExternalKind,
    modules: &mut Vec<Option<ModuleCaptures>>,
    components: &mut Vec<Option<Captured>>,
    types: &mut u32,
    funcs: &mut u32,
    instances: &mut u32,
) {
    match kind {
        ComponentExternalKind::Module => modules.push(None),
        ComponentExternalKind::Func => *funcs += 1,
        ComponentExternalKind::Type => *types += 1,
        ComponentExternalKind::Instance => *instances += 1,
        ComponentExternalKind::Component => components.push(None),
        ComponentExternalKind::Value => {}
    }
}

/// `module` (the `index`-th core module) exporting every mutable global and memory it defines.
fn instrument_module(
    module: &[u8],
    index: usize,
) -> Result<(Vec<u8>, ModuleCaptures), InstrumentError> {
    let parse = |e: wasmparser::BinaryReaderError| {
        refuse(format!("core module {index} cannot be parsed: {e}"))
    };
    let mut captures = ModuleCaptures::default();
    let (mut imported_globals, mut imported_memories) = (0u32, 0u32);
    let mut sections: Vec<(u8, &[u8])> = Vec::new();
    let mut exports = ExportSection::new();
    for payload in Parser::new(0).parse_all(module) {
        let payload = payload.map_err(parse)?;
        match &payload {
            Payload::ImportSection(reader) => {
                for import in reader.clone().into_imports() {
                    match import.map_err(parse)?.ty {
                        TypeRef::Global(_) => imported_globals += 1,
                        TypeRef::Memory(_) => imported_memories += 1,
                        _ => {}
                    }
                }
            }
            Payload::GlobalSection(reader) => {
                for (i, global) in reader.clone().into_iter().enumerate() {
                    let ty = global.map_err(parse)?.ty;
                    if !ty.mutable {
                        continue;
                    }
                    if ty.shared {
                        return Err(refuse(format!("core module {index} has a shared global")));
                    }
                    let kind = match ty.content_type {
                        wasmparser::ValType::I32 => GlobalKind::I32,
                        wasmparser::ValType::I64 => GlobalKind::I64,
                        wasmparser::ValType::F32 => GlobalKind::F32,
                        wasmparser::ValType::F64 => GlobalKind::F64,
                        other => {
                            return Err(refuse(format!(
                                "core module {index} has a mutable {other} global"
                            )));
                        }
                    };
                    captures.globals.push((imported_globals + i as u32, kind));
                }
            }
            Payload::MemorySection(reader) => {
                for (i, memory) in reader.clone().into_iter().enumerate() {
                    let memory = memory.map_err(parse)?;
                    if memory.memory64 || memory.shared || memory.page_size_log2.is_some() {
                        return Err(refuse(format!(
                            "core module {index} has a 64-bit, shared or custom-page memory"
                        )));
                    }
                    captures.memories.push(imported_memories + i as u32);
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader.clone() {
                    let export = export.map_err(parse)?;
                    exports.export(export.name, export_kind(export.kind)?, export.index);
                }
                continue;
            }
            _ => {}
        }
        if let Some((id, range)) = payload.as_section() {
            sections.push((id, &module[range]));
        }
    }
    for (global, _) in &captures.globals {
        exports.export(&format!("damson:g{global}"), ExportKind::Global, *global);
    }
    for memory in &captures.memories {
        exports.export(&format!("damson:m{memory}"), ExportKind::Memory, *memory);
    }
    // The export section goes where the format wants it: before start, element, data count,
    // code and data.
    let at = sections
        .iter()
        .position(|(id, _)| matches!(id, 8..=12))
        .unwrap_or(sections.len());
    let mut out = Module::new();
    for (id, data) in &sections[..at] {
        out.section(&RawSection { id: *id, data });
    }
    out.section(&exports);
    for (id, data) in &sections[at..] {
        out.section(&RawSection { id: *id, data });
    }
    Ok((out.finish(), captures))
}

fn export_kind(kind: ExternalKind) -> Result<ExportKind, InstrumentError> {
    Ok(match kind {
        ExternalKind::Func => ExportKind::Func,
        ExternalKind::Table => ExportKind::Table,
        ExternalKind::Memory => ExportKind::Memory,
        ExternalKind::Global => ExportKind::Global,
        ExternalKind::Tag => ExportKind::Tag,
        other => return Err(refuse(format!("an export of kind {other:?}"))),
    })
}

/// The lifted functions' shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Signature {
    GlobalsGet,
    GlobalsSet,
    Size,
    Grow,
    Read,
    Write,
}

struct AccessorFunction {
    name: String,
    signature: Signature,
}

/// The accessor's functions, in the order of its exports after `realloc`.
fn accessor_functions(memories: usize) -> Vec<AccessorFunction> {
    let mut functions = vec![
        AccessorFunction {
            name: "globals-get".into(),
            signature: Signature::GlobalsGet,
        },
        AccessorFunction {
            name: "globals-set".into(),
            signature: Signature::GlobalsSet,
        },
    ];
    for m in 0..memories {
        for (name, signature) in [
            ("size", Signature::Size),
            ("grow", Signature::Grow),
            ("read", Signature::Read),
            ("write", Signature::Write),
        ] {
            functions.push(AccessorFunction {
                name: format!("{name}-{m}"),
                signature,
            });
        }
    }
    functions
}

/// The accessor core module: it imports the captured globals and memories of every holder (as
/// `i<instance>`), and defines `memory`, `realloc` and the functions of [`accessor_functions`].
fn accessor_module(holders: &[(u32, ModuleCaptures)]) -> Vec<u8> {
    let mut imports = ImportSection::new();
    let mut globals = Vec::new();
    let mut memories = 0u32;
    for (instance, captures) in holders {
        let module = format!("i{instance}");
        for (global, kind) in &captures.globals {
            imports.import(
                &module,
                &format!("damson:g{global}"),
                GlobalType {
                    val_type: val_type(*kind),
                    mutable: true,
                    shared: false,
                },
            );
            globals.push(*kind);
        }
        for memory in &captures.memories {
            imports.import(
                &module,
                &format!("damson:m{memory}"),
                MemoryType {
                    minimum: 0,
                    maximum: None,
                    memory64: false,
                    shared: false,
                    page_size_log2: None,
                },
            );
            memories += 1;
        }
    }
    let own = memories; // the accessor's own memory follows the imported ones

    let mut types = TypeSection::new();
    let signatures: [(&[ValType], &[ValType]); 7] = [
        (&[ValType::I32; 4], &[ValType::I32]),            // realloc
        (&[], &[ValType::I32]),                           // globals-get, size
        (&[ValType::I32, ValType::I32], &[]),             // globals-set
        (&[ValType::I32], &[ValType::I32]),               // grow
        (&[ValType::I32, ValType::I32], &[ValType::I32]), // read
        (&[ValType::I32; 3], &[]),                        // write
        (&[], &[]),
    ];
    for (params, results) in signatures {
        types
            .ty()
            .function(params.iter().copied(), results.iter().copied());
    }
    let mut functions = FunctionSection::new();
    let mut code = CodeSection::new();
    // Functions in the order of their exports: `realloc`, then `accessor_functions`.
    let mut add = |ty: u32, locals: Vec<(u32, ValType)>, body: &[Instruction]| {
        functions.function(ty);
        let mut function = Function::new(locals);
        for instruction in body {
            function.instruction(instruction);
        }
        function.instruction(&Instruction::End);
        code.function(&function);
    };
    let arg = |offset: u64, align: u32| MemArg {
        offset,
        align,
        memory_index: own,
    };
    // Make room for `local 0` bytes after BUFFER in the accessor's memory (pages of 64 KiB).
    let ensure = |bytes: u32| -> Vec<Instruction<'static>> {
        vec![
            Instruction::LocalGet(bytes),
            Instruction::I32Const(BUFFER + 0xffff),
            Instruction::I32Add,
            Instruction::I32Const(16),
            Instruction::I32ShrU,
            Instruction::MemorySize(own),
            Instruction::I32Sub,
            Instruction::LocalTee(bytes + 1),
            Instruction::I32Const(0),
            Instruction::I32GtS,
            Instruction::If(wasm_encoder::BlockType::Empty),
            Instruction::LocalGet(bytes + 1),
            Instruction::MemoryGrow(own),
            Instruction::I32Const(-1),
            Instruction::I32Eq,
            Instruction::If(wasm_encoder::BlockType::Empty),
            Instruction::Unreachable,
            Instruction::End,
            Instruction::End,
        ]
    };
    let ret_area = |len: u32| -> Vec<Instruction<'static>> {
        vec![
            Instruction::I32Const(0),
            Instruction::I32Const(BUFFER),
            Instruction::I32Store(arg(0, 2)),
            Instruction::I32Const(0),
            Instruction::LocalGet(len),
            Instruction::I32Store(arg(4, 2)),
            Instruction::I32Const(0),
        ]
    };

    // realloc(old, old_size, align, new_size): always the buffer, big enough.
    let mut body = ensure(3);
    body.push(Instruction::I32Const(BUFFER));
    add(0, vec![(1, ValType::I32)], &body);

    // globals-get() -> retptr
    let count = globals.len() as u32;
    let mut body = vec![
        Instruction::I32Const((count * 8) as i32),
        Instruction::LocalSet(0),
    ];
    body.extend(ensure(0));
    for (i, kind) in globals.iter().enumerate() {
        body.push(Instruction::I32Const(BUFFER));
        body.push(Instruction::GlobalGet(i as u32));
        match kind {
            GlobalKind::I32 => body.push(Instruction::I64ExtendI32U),
            GlobalKind::I64 => {}
            GlobalKind::F32 => {
                body.push(Instruction::I32ReinterpretF32);
                body.push(Instruction::I64ExtendI32U);
            }
            GlobalKind::F64 => body.push(Instruction::I64ReinterpretF64),
        }
        body.push(Instruction::I64Store(arg(8 * i as u64, 3)));
    }
    body.push(Instruction::I32Const(count as i32));
    body.push(Instruction::LocalSet(0));
    body.extend(ret_area(0));
    add(1, vec![(2, ValType::I32)], &body);

    // globals-set(ptr, len)
    let mut body = vec![
        Instruction::LocalGet(1),
        Instruction::I32Const(count as i32),
        Instruction::I32Ne,
        Instruction::If(wasm_encoder::BlockType::Empty),
        Instruction::Unreachable,
        Instruction::End,
    ];
    for (i, kind) in globals.iter().enumerate() {
        body.push(Instruction::LocalGet(0));
        body.push(Instruction::I64Load(arg(8 * i as u64, 3)));
        match kind {
            GlobalKind::I32 => body.push(Instruction::I32WrapI64),
            GlobalKind::I64 => {}
            GlobalKind::F32 => {
                body.push(Instruction::I32WrapI64);
                body.push(Instruction::F32ReinterpretI32);
            }
            GlobalKind::F64 => body.push(Instruction::F64ReinterpretI64),
        }
        body.push(Instruction::GlobalSet(i as u32));
    }
    add(2, vec![], &body);

    for m in 0..memories {
        add(1, vec![], &[Instruction::MemorySize(m)]);
        add(
            3,
            vec![],
            &[Instruction::LocalGet(0), Instruction::MemoryGrow(m)],
        );
        // read(offset, len) -> retptr
        let mut body = ensure(1);
        body.extend([
            Instruction::I32Const(BUFFER),
            Instruction::LocalGet(0),
            Instruction::LocalGet(1),
            Instruction::MemoryCopy {
                src_mem: m,
                dst_mem: own,
            },
        ]);
        body.extend(ret_area(1));
        add(4, vec![(1, ValType::I32)], &body);
        // write(offset, ptr, len)
        add(
            5,
            vec![],
            &[
                Instruction::LocalGet(0),
                Instruction::LocalGet(1),
                Instruction::LocalGet(2),
                Instruction::MemoryCopy {
                    src_mem: own,
                    dst_mem: m,
                },
            ],
        );
    }
    let mut exports = ExportSection::new();
    exports.export("memory", ExportKind::Memory, own);
    exports.export("realloc", ExportKind::Func, 0);
    for (i, function) in accessor_functions(memories as usize).iter().enumerate() {
        exports.export(&function.name, ExportKind::Func, 1 + i as u32);
    }

    let mut memory_section = MemorySection::new();
    memory_section.memory(MemoryType {
        minimum: ACCESSOR_PAGES,
        maximum: None,
        memory64: false,
        shared: false,
        page_size_log2: None,
    });
    let mut module = Module::new();
    module.section(&types);
    module.section(&imports);
    module.section(&functions);
    module.section(&memory_section);
    module.section(&exports);
    module.section(&code);
    module.finish()
}

fn val_type(kind: GlobalKind) -> ValType {
    match kind {
        GlobalKind::I32 => ValType::I32,
        GlobalKind::I64 => ValType::I64,
        GlobalKind::F32 => ValType::F32,
        GlobalKind::F64 => ValType::F64,
    }
}

#[cfg(test)]
mod tests {
    use wasmtime::component::{Component, Instance, Linker};
    use wasmtime::{Engine, Store};

    use super::*;

    /// Two instances of one module and one of another: counters in globals of every type and a
    /// history in memory, so that a restore that misses any of it diverges.
    const COUNTERS: &str = r#"(component
      (core module $counter
        (memory (export "memory") 1)
        (global $n (mut i32) (i32.const 0))
        (global $half (mut f32) (f32.const 0.5))
        (global $down (mut i64) (i64.const 0))
        (global $third (mut f64) (f64.const 1))
        (global $fixed i32 (i32.const 9))
        (func (export "bump") (result i64)
          (global.set $n (i32.add (global.get $n) (i32.const 1)))
          (global.set $half (f32.mul (global.get $half) (f32.const 2)))
          (global.set $down (i64.sub (global.get $down) (i64.const 7)))
          (global.set $third (f64.div (global.get $third) (f64.const 3)))
          ;; the history: n*n at 4*n, summed
          (i32.store (i32.mul (global.get $n) (i32.const 4))
                     (i32.mul (global.get $n) (global.get $n)))
          (i64.add
            (i64.add (global.get $down) (i64.extend_i32_u (call $sum)))
            (i64.add (i64.trunc_f32_s (global.get $half))
                     (i64.trunc_f64_s (f64.mul (global.get $third) (f64.const 1e9))))))
        (func $sum (result i32) (local $i i32) (local $s i32)
          (block $done
            (loop $next
              (br_if $done (i32.gt_u (local.get $i) (global.get $n)))
              (local.set $s (i32.add (local.get $s)
                (i32.load (i32.mul (local.get $i) (i32.const 4)))))
              (local.set $i (i32.add (local.get $i) (i32.const 1)))
              (br $next)))
          (local.get $s)))
      (core module $grower
        (memory 0)
        (global $pages (mut i32) (i32.const 0))
        (func (export "grow") (result i32)
          (drop (memory.grow (i32.const 1)))
          (i32.store8 (i32.sub (i32.mul (memory.size) (i32.const 65536)) (i32.const 1))
                      (memory.size))
          (global.set $pages (memory.size))
          (global.get $pages)))
      (core instance $a (instantiate $counter))
      (core instance $b (instantiate $counter))
      (core instance $g (instantiate $grower))
      (func (export "bump-a") (result s64) (canon lift (core func $a "bump")))
      (func (export "bump-b") (result s64) (canon lift (core func $b "bump")))
      (func (export "grow") (result u32) (canon lift (core func $g "grow")))
    )"#;

    fn compiled(engine: &Engine) -> (Component, Captured) {
        let bytes = wat::parse_str(COUNTERS).unwrap();
        let instrumented = instrument(&bytes).unwrap();
        let component = Component::new(engine, &instrumented.bytes).unwrap();
        (component, instrumented.captured)
    }

    fn instantiate(engine: &Engine, component: &Component) -> (Store<()>, Instance) {
        let mut store = Store::new(engine, ());
        let instance = Linker::new(engine)
            .instantiate(&mut store, component)
            .unwrap();
        (store, instance)
    }

    fn call<P, R>(store: &mut Store<()>, instance: &Instance, name: &str, params: P) -> R
    where
        P: wasmtime::component::ComponentNamedList + wasmtime::component::Lower,
        R: wasmtime::component::ComponentNamedList + wasmtime::component::Lift,
    {
        let accessor = instance.get_export_index(&mut *store, None, ACCESSOR);
        let index = instance
            .get_export_index(&mut *store, accessor.as_ref(), name)
            .or_else(|| instance.get_export_index(&mut *store, None, name))
            .unwrap_or_else(|| panic!("no export {name}"));
        let func = instance
            .get_typed_func::<P, R>(&mut *store, &index)
            .unwrap();
        func.call(&mut *store, params).unwrap()
    }

    /// Every captured global and every memory's bytes.
    fn snapshot(store: &mut Store<()>, instance: &Instance, memories: usize) -> Snapshot {
        let (globals,): (Vec<u64>,) = call(store, instance, "globals-get", ());
        let memories = (0..memories)
            .map(|m| {
                let (pages,): (u32,) = call(store, instance, &format!("size-{m}"), ());
                let (bytes,): (Vec<u8>,) =
                    call(store, instance, &format!("read-{m}"), (0u32, pages * 65536));
                bytes
            })
            .collect();
        Snapshot { globals, memories }
    }

    #[derive(Debug, PartialEq)]
    struct Snapshot {
        globals: Vec<u64>,
        memories: Vec<Vec<u8>>,
    }

    /// A fresh instance made to hold `snapshot`: memories grown and written, globals set last.
    fn restore(store: &mut Store<()>, instance: &Instance, snapshot: &Snapshot) {
        for (m, bytes) in snapshot.memories.iter().enumerate() {
            let (pages,): (u32,) = call(store, instance, &format!("size-{m}"), ());
            let wanted = (bytes.len() / 65536) as u32;
            if wanted > pages {
                let (grown,): (i32,) =
                    call(store, instance, &format!("grow-{m}"), (wanted - pages,));
                assert_eq!(grown, pages as i32);
            }
            let () = call(
                store,
                instance,
                &format!("write-{m}"),
                (0u32, bytes.clone()),
            );
        }
        let () = call(store, instance, "globals-set", (snapshot.globals.clone(),));
    }

    #[test]
    fn every_mutable_global_and_memory_of_every_core_instance_is_captured() {
        let engine = Engine::default();
        let (_, captured) = compiled(&engine);
        use GlobalKind::*;
        // Instances 0 and 1 are the counters, 2 the grower; immutable globals are left out.
        assert_eq!(
            captured.globals,
            [
                (0, I32),
                (0, F32),
                (0, I64),
                (0, F64),
                (1, I32),
                (1, F32),
                (1, I64),
                (1, F64),
                (2, I32)
            ]
        );
        assert_eq!(captured.memories, [0, 1, 2]);
    }

    #[test]
    fn a_fresh_instance_restored_carries_on_as_the_original_does() {
        let engine = Engine::default();
        let (component, captured) = compiled(&engine);
        let memories = captured.memories.len();
        let (mut store, original) = instantiate(&engine, &component);
        for _ in 0..3 {
            let _: (i64,) = call(&mut store, &original, "bump-a", ());
        }
        let _: (i64,) = call(&mut store, &original, "bump-b", ());
        let _: (u32,) = call(&mut store, &original, "grow", ());
        let _: (u32,) = call(&mut store, &original, "grow", ());
        let image = snapshot(&mut store, &original, memories);
        assert_eq!(image.memories[2].len(), 2 * 65536, "the grown memory");

        let (mut fresh_store, fresh) = instantiate(&engine, &component);
        restore(&mut fresh_store, &fresh, &image);
        assert_eq!(snapshot(&mut fresh_store, &fresh, memories), image);
        // The next calls answer alike, and the states stay bit-identical.
        for name in ["bump-a", "bump-b", "bump-a"] {
            let theirs: (i64,) = call(&mut store, &original, name, ());
            let ours: (i64,) = call(&mut fresh_store, &fresh, name, ());
            assert_eq!(ours, theirs, "{name}");
        }
        let theirs: (u32,) = call(&mut store, &original, "grow", ());
        let ours: (u32,) = call(&mut fresh_store, &fresh, "grow", ());
        assert_eq!((ours, theirs), ((3,), (3,)));
        assert_eq!(
            snapshot(&mut fresh_store, &fresh, memories),
            snapshot(&mut store, &original, memories)
        );
    }

    #[test]
    fn a_restore_of_memories_alone_diverges() {
        // What the check above guards against: the globals hold state the memories do not.
        let engine = Engine::default();
        let (component, captured) = compiled(&engine);
        let (mut store, original) = instantiate(&engine, &component);
        for _ in 0..3 {
            let _: (i64,) = call(&mut store, &original, "bump-a", ());
        }
        let mut image = snapshot(&mut store, &original, captured.memories.len());
        let (mut fresh_store, fresh) = instantiate(&engine, &component);
        let (initial,): (Vec<u64>,) = call(&mut fresh_store, &fresh, "globals-get", ());
        image.globals = initial;
        restore(&mut fresh_store, &fresh, &image);
        let theirs: (i64,) = call(&mut store, &original, "bump-a", ());
        let ours: (i64,) = call(&mut fresh_store, &fresh, "bump-a", ());
        assert_ne!(ours, theirs);
    }

    #[test]
    fn what_cannot_be_captured_is_refused_with_its_reason() {
        let refused = |wat: &str| instrument(&wat::parse_str(wat).unwrap()).unwrap_err().0;
        assert!(
            refused(r#"(component (import "c" (component $c)) (instance (instantiate $c)))"#)
                .contains("component 0 is imported or aliased")
        );
        let nested = refused("(component (component (core module (memory i64 1))))");
        assert!(
            nested.contains("nested component 0") && nested.contains("64-bit"),
            "{nested}"
        );
        assert!(
            refused("(component (core module (global (mut v128) (v128.const i64x2 0 0))))")
                .contains("mutable v128 global")
        );
        assert!(refused("(component (core module (memory i64 1)))").contains("64-bit"));
        assert!(
            refused(
                r#"(component (import "m" (core module $m)) (core instance (instantiate $m)))"#
            )
            .contains("imported or aliased")
        );
        assert!(refused("(module)").contains("not a component"));
    }
}
