//! Host bindings generated from `wit/`: the one place the WIT world enters the host.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "damson:workflow/plugin",
    imports: { default: trappable },
    exports: { default: async },
});

/// The world a plugin must implement, as its exported interface is named.
pub const PROCESS_INTERFACE: &str = "damson:workflow/process@0.1.0";
/// The host interface plugins import.
pub const HOST_INTERFACE: &str = "damson:workflow/host@0.1.0";
