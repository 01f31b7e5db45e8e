//! Host bindings generated from `wit/`: the one place the WIT world enters the host. Two
//! versions of it: the current world, which new plugins are built against, and 0.1.0, whose
//! plugins keep loading unchanged (see [`world`](super::world)).

/// The current world, `damson:workflow@0.2.0`.
pub(crate) mod current {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "damson:workflow/plugin",
        imports: { default: trappable },
        exports: { default: async },
        // What a 0.1.0 plugin returns becomes these types through serde (see `world`).
        additional_derives: [serde::Deserialize],
    });

    /// The world, as a plugin names it.
    pub(crate) const WORLD: &str = "damson:workflow/plugin@0.2.0";
    /// The interface a plugin exports.
    pub(crate) const PROCESS_INTERFACE: &str = "damson:workflow/process@0.2.0";
    /// The interface a plugin imports.
    pub(crate) const HOST_INTERFACE: &str = "damson:workflow/host@0.2.0";
    /// The interface of the shared types.
    pub(crate) const TYPES_INTERFACE: &str = "damson:workflow/types@0.2.0";
}

/// The first world, `damson:workflow@0.1.0`, as `wit/0.1.0/` keeps it.
pub(crate) mod v0_1 {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "damson:workflow/plugin",
        imports: { default: trappable },
        exports: { default: async },
        additional_derives: [serde::Serialize],
    });

    pub(crate) const WORLD: &str = "damson:workflow/plugin@0.1.0";
    pub(crate) const PROCESS_INTERFACE: &str = "damson:workflow/process@0.1.0";
    pub(crate) const HOST_INTERFACE: &str = "damson:workflow/host@0.1.0";
    pub(crate) const TYPES_INTERFACE: &str = "damson:workflow/types@0.1.0";
}
