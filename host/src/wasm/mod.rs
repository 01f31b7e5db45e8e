//! Running plugins: the wasmtime engine, loading and checking components, instances and limits.
//!
//! **Architecture invariant:** the only module that touches wasmtime, and no WIT type leaves it.
//! It turns traps, limits and guest errors into [`Failure`]s, WIT declarations into the host's
//! spec types ([`spec`]), and what a call did into a [`StepOutcome`](crate::guest::StepOutcome);
//! the [`Guest`](crate::guest::Guest) a process runs on is [`Guests`].

mod bindings;
mod cache;
mod epoch;
mod guests;
mod image;
mod instance;
mod instrument;
mod lane;
mod limits;
mod plugin;
mod pool;
pub mod safety;
mod spec;
mod state;
mod world;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::{Component, Linker, types::ComponentItem};

pub(crate) use guests::Guests;
pub(crate) use image::DecodedImage;
use instance::Instance;
pub(crate) use limits::Limits;
pub(crate) use plugin::Loaded;
pub use plugin::Plugin;
pub use safety::SnapshotSafety;
use state::StoreState;
use world::{World, WorldPre};

use crate::config::HostConfig;
use crate::error::{BoxError, Error, Result};
use crate::fair::FairPermits;
use crate::guest::Failure;

/// The plugin world this host implements, which the guest SDKs build against. Plugins built
/// against the earlier `damson:workflow/plugin@0.1.0` load and run unchanged.
pub const WORLD: &str = bindings::current::WORLD;

/// The wasmtime engine and linker shared by all plugins of a host. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Runtime {
    inner: Arc<Shared>,
    /// What each instance may use: the host configuration's, unless narrowed for a tenant.
    limits: Limits,
    /// The tenant its instances run for, as the lane counts turns.
    tenant: Arc<str>,
}

struct Shared {
    engine: Engine,
    /// The seats long guest calls take turns in (see `lane`).
    lane: Arc<FairPermits>,
    linker: Linker<StoreState>,
    /// Where instantiations wait when the instance pool is full.
    slots: pool::Slots,
    config: HostConfig,
    _ticker: epoch::EpochTicker,
}

impl Runtime {
    pub(crate) fn new(config: &HostConfig) -> Result<Self> {
        let mut wasm = wasmtime::Config::new();
        wasm.wasm_component_model(true)
            .epoch_interruption(true)
            .max_wasm_stack(config.max_wasm_stack)
            // The fiber a guest call runs on needs room for the wasm stack and the host frames.
            .async_stack_size(config.max_wasm_stack + (1 << 20));
        pool::configure(&mut wasm, config);
        let engine_error = |e: wasmtime::Error| Error::Engine {
            source: BoxError::from(e),
        };
        let engine = Engine::new(&wasm).map_err(|e| match config.instance_pool {
            0 => engine_error(e),
            instances => Error::InstancePool {
                instances,
                max_memory: config.max_memory,
                reservation: pool::reservation(config),
                source: BoxError::from(e),
            },
        })?;
        let mut linker = Linker::new(&engine);
        // Plugins built by Rust's wasm32-wasip2 import WASI even when they use none of it; the
        // sandbox (empty by default) decides what those imports can reach.
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(engine_error)?;
        world::add_to_linker(&mut linker).map_err(engine_error)?;
        let ticker = epoch::EpochTicker::start(&engine, config.epoch_tick);
        Ok(Self {
            inner: Arc::new(Shared {
                engine,
                lane: lane::lane(),
                linker,
                slots: pool::Slots::default(),
                config: config.clone(),
                _ticker: ticker,
            }),
            limits: Limits {
                max_memory: config.max_memory,
                step_timeout: config.step_timeout,
            },
            tenant: Arc::from(config.tenant.as_str()),
        })
    }

    /// The same engine and linker, its instances held to `limits` and running for `tenant`.
    pub(crate) fn for_tenant(&self, limits: Limits, tenant: &str) -> Self {
        Self {
            inner: self.inner.clone(),
            limits,
            tenant: Arc::from(tenant),
        }
    }

    /// A place in the lane for a new instance.
    fn seat(&self) -> lane::Seat {
        lane::Seat::new(self.inner.lane.clone(), self.tenant.clone())
    }

    /// What each instance of this runtime may use.
    pub(crate) fn limits(&self) -> Limits {
        self.limits
    }

    fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    fn config(&self) -> &HostConfig {
        &self.inner.config
    }

    fn slots(&self) -> &pool::Slots {
        &self.inner.slots
    }

    /// Load the component at `path`: check that it is a component of this world, compile it (or
    /// reuse its cached artifact) and read its declared spec.
    pub(crate) async fn load(&self, path: &Path) -> Result<Loaded> {
        let bytes: Arc<[u8]> = std::fs::read(path)
            .map_err(|source| Error::ReadPlugin {
                path: path.to_path_buf(),
                source,
            })?
            .into();
        check_header(path, &bytes)?;
        let digest = hex::encode(Sha256::digest(&bytes));
        let mut safety = safety::check(&bytes);

        let engine = self.engine().clone();
        let cache_dir = self.config().cache_dir.clone();
        let digest_for_compile = digest.clone();
        let bytes_for_compile = bytes.clone();
        // Compiling takes a while: keep it off the async worker threads.
        let compiled = tokio::task::spawn_blocking(move || {
            // Rewritten so that memory images hold every global and memory (see `instrument`);
            // one that cannot be checkpoints through its record alone. Cached under a key of
            // its own (the digest a user sees stays the original's), which also tells that the
            // rewrite succeeded before: a cached one is not rewritten again.
            let key = format!("{digest_for_compile}-{}", instrument::VERSION);
            if let Some(component) = cache::cached(&engine, &key, cache_dir.as_deref()) {
                return Ok((component, true, None));
            }
            match instrument::instrument(&bytes_for_compile) {
                Ok(instrumented) => {
                    tracing::debug!(
                        globals = instrumented.captured.globals.len(),
                        memories = instrumented.captured.memories.len(),
                        "instrumented the component for memory images"
                    );
                    cache::compile(&engine, &instrumented.bytes, &key, cache_dir.as_deref())
                        .map(|(component, cached)| (component, cached, None))
                }
                Err(refused) => cache::compile(
                    &engine,
                    &bytes_for_compile,
                    &digest_for_compile,
                    cache_dir.as_deref(),
                )
                .map(|(component, cached)| (component, cached, Some(refused.to_string()))),
            }
        })
        .await
        .expect("the compile task panicked");
        let (component, from_cache, refused) = compiled.map_err(|e| Error::InvalidComponent {
            path: path.to_path_buf(),
            source: BoxError::from(e),
        })?;
        safety.reasons.extend(refused);

        let world = self.check_world(path, &component)?;
        let unlinkable = |e: wasmtime::Error| Error::WrongWorld {
            path: path.to_path_buf(),
            expected: WORLD,
            detail: "it cannot be linked against this host's imports".into(),
            source: Some(BoxError::from(e)),
        };
        let instance_pre = self
            .inner
            .linker
            .instantiate_pre(&component)
            .map_err(unlinkable)?;
        let pre = WorldPre::new(world, instance_pre).map_err(unlinkable)?;

        // Declaring the spec runs guest code: under the same limits as a step.
        let interrupt = Arc::new(AtomicBool::new(false));
        let declare = |source: Failure| Error::Declare {
            path: path.to_path_buf(),
            source,
        };
        let loading = || {
            Instance::new(
                self,
                &pre,
                "(loading)".into(),
                None,
                interrupt.clone(),
                None,
                None,
            )
        };
        let mut instance = loading().await.map_err(declare)?;
        // Before its first call: what every fresh instance holds, which images are deltas
        // against; a second instance tells the pages that are not the same in each. One
        // instance at a time, so that loading needs a single slot of the instance pool.
        let fresh = match instance.fresh().await.map_err(declare)? {
            Some(mut fresh) => {
                drop(instance);
                instance = loading().await.map_err(declare)?;
                if let Some(theirs) = instance.fresh().await.map_err(declare)? {
                    fresh.unstable_against(&theirs);
                }
                Some(Arc::new(fresh))
            }
            None => None,
        };
        let declared = instance.describe().await.map_err(declare)?;
        let name = declared.name.clone();
        let declared = spec::from_wit(declared).map_err(|source| Error::InvalidSpec {
            plugin: name,
            source,
        })?;
        tracing::debug!(plugin = %declared.name, digest, from_cache, "loaded component");
        Ok(Loaded {
            path: path.to_path_buf(),
            digest,
            from_cache,
            safety,
            pre,
            fresh,
            declared,
            bytes,
        })
    }

    /// The guest a process of `plugin` runs on, interrupted by `interrupt`: a fresh instance, or
    /// one with the memories of `image` (taken from an instance of the same component) written
    /// back. An image is used only for a snapshot-safe plugin; otherwise the process continues
    /// on a fresh instance, from its record alone.
    pub(crate) async fn guests(
        &self,
        plugin: &Arc<Plugin>,
        interrupt: Arc<AtomicBool>,
        image: Option<Vec<u8>>,
    ) -> Result<Guests, Failure> {
        let safe = plugin.snapshot_safety().is_safe();
        let image = match image {
            Some(bytes) if safe => {
                Some(DecodedImage::decode(bytes).map_err(|e| Failure::Restore(e.to_string()))?)
            }
            _ => None,
        };
        let own = self.instance(plugin, interrupt, image.as_ref()).await?;
        Ok(Guests {
            runtime: self.clone(),
            plugin: plugin.clone(),
            own: Some(own),
            others: HashMap::new(),
            images: safe && self.config().memory_images,
        })
    }

    /// An instance of `plugin`, fresh or with `image` written back.
    async fn instance(
        &self,
        plugin: &Plugin,
        interrupt: Arc<AtomicBool>,
        image: Option<&DecodedImage>,
    ) -> Result<Instance, Failure> {
        Instance::new(
            self,
            &plugin.pre,
            plugin.name().into(),
            Some(plugin.spec().clone()),
            interrupt,
            image,
            plugin.fresh.clone(),
        )
        .await
    }

    /// The world a component was built against; what is wrong when it does not export the
    /// `process` interface of a world this host loads, or imports something this host does
    /// not provide.
    fn check_world(&self, path: &Path, component: &Component) -> Result<World> {
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(self.engine())
            .map(|(n, _)| n.to_string())
            .collect();
        let Some(world) = World::exported_by(&exports) else {
            let detail = match exports
                .iter()
                .find(|e| e.starts_with("damson:workflow/process@"))
            {
                Some(other) => format!(
                    "it exports {other}, but this host implements {}",
                    World::process_interfaces()
                ),
                None if exports.is_empty() => "it exports nothing".to_string(),
                None => format!(
                    "it does not export {} (it exports: {})",
                    World::process_interfaces(),
                    exports.join(", ")
                ),
            };
            return Err(Error::WrongWorld {
                path: path.to_path_buf(),
                expected: WORLD,
                detail,
                source: None,
            });
        };
        for (name, item) in ty.imports(self.engine()) {
            if !World::provides(name) {
                let kind = match item.ty {
                    ComponentItem::ComponentInstance(_) => "interface",
                    _ => "item",
                };
                return Err(Error::WrongWorld {
                    path: path.to_path_buf(),
                    expected: WORLD,
                    detail: format!(
                        "it imports the {kind} {name}, which this host does not provide"
                    ),
                    source: None,
                });
            }
        }
        Ok(world)
    }
}

/// Tell a text file or a core module from a component before wasmtime gives a vaguer error.
fn check_header(path: &Path, bytes: &[u8]) -> Result<()> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(Error::NotWasm {
            path: path.to_path_buf(),
        });
    }
    // Bytes 4..8: version 1 layer 0 is a core module; a component has layer 1.
    if bytes[4..8] == [1, 0, 0, 0] {
        return Err(Error::CoreModule {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}
