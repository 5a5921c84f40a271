//! Host bindings generated from `wit/hook.wit` (world `sluice:hook/hook`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "sluice:hook/hook",
});
