//! [`HostConfig`]: how the host runs plugins. Every option documents its default.

use std::path::PathBuf;
use std::time::Duration;

/// How a [`Host`](crate::Host) runs plugins.
///
/// # Defaults
/// - memory per plugin instance: 256 MiB ([`max_memory`](Self::max_memory))
/// - wall-clock time per step: 10 s ([`step_timeout`](Self::step_timeout))
/// - wasm stack: 1 MiB ([`max_wasm_stack`](Self::max_wasm_stack))
/// - compiled-artifact cache: none ([`cache_dir`](Self::cache_dir); the CLI uses
///   `$DAMSON_HOME/cache`)
/// - sandbox: no WASI capability at all ([`Sandbox`])
/// - processes running a guest call at once: 64
///   ([`max_concurrent_steps`](Self::max_concurrent_steps))
/// - with a store ([`Host::with_store`](crate::Host::with_store)): a checkpoint after every
///   step ([`checkpoint_every_step`](Self::checkpoint_every_step)), with a memory image of
///   snapshot-safe plugins ([`memory_images`](Self::memory_images)), and a claim on each
///   process, lasting 30 s unrenewed ([`claim_processes`](Self::claim_processes)); each
///   process's log keeps its last 1000 lines ([`log_lines`](Self::log_lines)); a process that
///   waits for a resume leaves memory at once
///   ([`dehydrate_waiting`](Self::dehydrate_waiting))
/// - plugin instances at once: 1000, their memories reserved up front in one pool
///   ([`instance_pool`](Self::instance_pool))
///
/// ```
/// use std::time::Duration;
/// let mut config = damson::HostConfig::new();
/// config.max_memory(64 << 20).step_timeout(Duration::from_secs(2));
/// ```
#[derive(Debug, Clone)]
pub struct HostConfig {
    pub(crate) max_memory: usize,
    pub(crate) step_timeout: Duration,
    pub(crate) epoch_tick: Duration,
    pub(crate) max_wasm_stack: usize,
    pub(crate) cache_dir: Option<PathBuf>,
    pub(crate) plugin_dirs: Vec<PathBuf>,
    pub(crate) sandbox: Sandbox,
    pub(crate) max_concurrent_steps: usize,
    pub(crate) checkpoint_every_step: bool,
    pub(crate) memory_images: bool,
    pub(crate) claim_ttl: Duration,
    pub(crate) tenant: String,
    pub(crate) log_lines: usize,
    pub(crate) dehydrate_waiting: bool,
    pub(crate) instance_pool: u32,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl HostConfig {
    /// The defaults listed above.
    pub fn new() -> Self {
        Self {
            max_memory: 256 << 20,
            step_timeout: Duration::from_secs(10),
            epoch_tick: Duration::from_millis(10),
            max_wasm_stack: 1 << 20,
            cache_dir: None,
            plugin_dirs: Vec::new(),
            sandbox: Sandbox::default(),
            max_concurrent_steps: 64,
            checkpoint_every_step: true,
            memory_images: true,
            claim_ttl: Duration::from_secs(30),
            tenant: crate::persist::DEFAULT_TENANT.to_string(),
            log_lines: 1000,
            dehydrate_waiting: true,
            instance_pool: 1000,
        }
    }

    /// How many plugin instances may exist at once. Their memories, tables and stacks are
    /// reserved up front in one pool (wasmtime's pooling allocator), so that making an
    /// instance takes a slot and maps its memory copy-on-write instead of mapping and
    /// unmapping memory each time, which is most of what a short process costs. Each slot
    /// reserves address space (not memory) for [`max_memory`](Self::max_memory) per linear
    /// memory, two memories per instance. A freed slot keeps up to 4 MiB of its memory
    /// resident (reset in place, so that the next instance in it takes no page faults): a
    /// host's resident memory holds that much for each slot that has been in use (wasmtime
    /// reuses the slots used last, so about as many as the most instances held at once).
    ///
    /// When every slot is taken, a new instance waits for one to be freed (the log says so
    /// once): a process that ends, or a waiting one that is dehydrated
    /// ([`dehydrate_waiting`](Self::dehydrate_waiting)), frees its slot. Processes that wait
    /// in memory (on a host without a store, or for their children) keep theirs, so a host
    /// that holds more of them than this at once must raise it.
    ///
    /// `0` turns the pool off: each instance maps its own memory (a 4 GiB reservation each),
    /// with no limit on how many but at about half the speed for short processes.
    ///
    /// By default 1000.
    pub fn instance_pool(&mut self, instances: u32) -> &mut Self {
        self.instance_pool = instances;
        self
    }

    /// Whether a durable process that waits for a resume (or, paused, for a play) leaves
    /// memory: once its wait is checkpointed with a memory image, its task ends and its plugin
    /// instance is dropped, so that it holds no instance, no reserved memory and no task —
    /// a host can hold very many of them. Its handle stays, with its record and listeners
    /// ([`ProcessHandle::is_dehydrated`](crate::ProcessHandle::is_dehydrated)); the first
    /// request that needs it (resume, pause, play, kill, checkpoint) brings it back from its
    /// checkpoint on a new instance, on the same handle. A kill needs no instance: it is
    /// applied without one. A process that cannot be brought back (its store out of reach) is
    /// tried again, at intervals growing to 30 s, while the host lives.
    ///
    /// Processes of plugins that are not snapshot-safe, or with
    /// [`memory_images`](Self::memory_images) off, stay in memory (their state would be lost),
    /// as do processes waiting for children.
    ///
    /// By default on. Only matters for a host with a store.
    pub fn dehydrate_waiting(&mut self, on: bool) -> &mut Self {
        self.dehydrate_waiting = on;
        self
    }

    /// How many lines of its log each process keeps in the store: the last ones, the plugin's
    /// (what it logs in its steps and conditions) and the host's (its state changes, a kill, an
    /// error) together. Older lines are dropped and counted (`damson logs` shows the count),
    /// and one step holds no more than this many lines before they are stored, so a plugin that
    /// logs without end uses no more memory for it. The plugin's lines also go to the host's
    /// own log (`tracing`, target `damson::plugin`) as before, all of them.
    ///
    /// By default 1000. 0 keeps no line (but counts them). Only matters for a host with a
    /// store.
    pub fn log_lines(&mut self, lines: usize) -> &mut Self {
        self.log_lines = lines;
        self
    }

    /// The tenant the host acts for: every process it creates, restores, claims or recovers is
    /// this tenant's, under this tenant's keys in the store, and it finds no other tenant's.
    /// A host for several tenants makes one [`Host`](crate::Host) per tenant with
    /// [`Host::for_tenant`](crate::Host::for_tenant).
    ///
    /// By default the default tenant (`default`).
    pub fn tenant(&mut self, name: impl Into<String>) -> &mut Self {
        self.tenant = name.into();
        self
    }

    /// How long the claim a host takes on each process it runs in its store lasts unrenewed.
    /// Every host with a store claims its processes, so that no two hosts — a daemon and a
    /// `damson continue` on the same machine, or workers sharing a database — run one process
    /// at once: one that another host holds is refused ([`Error::Claimed`](crate::Error),
    /// naming the holder). The host renews its claims three times per `ttl`.
    ///
    /// A host that dies lets its claims go at once: its presence in the store ends with its
    /// process (the embedded store's lock file, PostgreSQL's session), so its processes can be
    /// continued, or taken over ([`Host::take_over`](crate::Host::take_over)), right away. The
    /// ttl is for a host that lives on but cannot renew (its store out of reach, or the host
    /// stalled): it saves no checkpoint once its claims may have run out — its processes wait
    /// at their next checkpoint until a renewal succeeds — and a process another host has
    /// taken over meanwhile is abandoned here, unsaved and unannounced. The store enforces it
    /// too: a checkpoint is written only while its host holds the process's claim
    /// ([`Persister::save_claimed`](crate::persist::Persister::save_claimed)). Claims run out by
    /// each host's clock: clocks must agree well within `ttl`.
    ///
    /// By default 30 s. Only matters for a host with a store.
    ///
    /// # Panics
    /// If `ttl` is under 100 ms.
    #[track_caller]
    pub fn claim_processes(&mut self, ttl: Duration) -> &mut Self {
        assert!(
            ttl >= Duration::from_millis(100),
            "the claim ttl must be at least 100 ms"
        );
        self.claim_ttl = ttl;
        self
    }

    /// Whether a durable process checkpoints after every step. Without it, a process
    /// checkpoints only when it is created, pauses, waits, launches children and terminates, so
    /// a crash re-runs the steps since the last of those.
    ///
    /// By default on. Only matters for a host with a store.
    pub fn checkpoint_every_step(&mut self, on: bool) -> &mut Self {
        self.checkpoint_every_step = on;
        self
    }

    /// Whether checkpoints of snapshot-safe plugins carry a memory image, so that state a
    /// plugin keeps in its own memory (a struct field, a map) survives a restart. Without it, or
    /// for a plugin that is not snapshot-safe, a restored process continues on a fresh instance
    /// and only its context, inputs and outputs carry over.
    ///
    /// By default on. Only matters for a host with a store.
    pub fn memory_images(&mut self, on: bool) -> &mut Self {
        self.memory_images = on;
        self
    }

    /// How many processes may run a guest call (a step, a condition, a validator) at the same
    /// time; the others wait for a turn. Processes that wait (for a resume or for children)
    /// take no turn. Guest calls yield at every epoch tick, so a limit above the number of
    /// cores keeps short steps flowing past long ones.
    ///
    /// The turns are shared fairly between the tenants of the hosts made from this one
    /// ([`Host::for_tenant`](crate::Host::for_tenant)): a turn set free goes to the waiting
    /// tenant that holds the fewest, and no tenant holds more than three quarters of them (of
    /// a limit of 4 or more), so that another tenant's step finds one at once.
    ///
    /// By default 64.
    ///
    /// # Panics
    /// If `limit` is 0.
    #[track_caller]
    pub fn max_concurrent_steps(&mut self, limit: usize) -> &mut Self {
        assert!(limit > 0, "max_concurrent_steps cannot be 0");
        self.max_concurrent_steps = limit;
        self
    }

    /// The most linear memory, in bytes, one plugin instance may use (all its memories together).
    /// A step that grows past it ends the process EXCEPTED, naming the limit.
    ///
    /// By default 256 MiB.
    ///
    /// # Panics
    /// If `bytes` is 0.
    #[track_caller]
    pub fn max_memory(&mut self, bytes: usize) -> &mut Self {
        assert!(bytes > 0, "max_memory cannot be 0");
        self.max_memory = bytes;
        self
    }

    /// How long one step (or condition, validator, default) may run, wall-clock. A step still
    /// running then is interrupted at the next epoch tick and the process ends EXCEPTED.
    ///
    /// By default 10 s.
    ///
    /// # Panics
    /// If `timeout` is zero.
    #[track_caller]
    pub fn step_timeout(&mut self, timeout: Duration) -> &mut Self {
        assert!(!timeout.is_zero(), "step_timeout cannot be zero");
        self.step_timeout = timeout;
        self
    }

    /// How often running guests are interrupted to check their deadline and let other work run
    /// (wasmtime's epoch). Shorter is more responsive and costs a little more.
    ///
    /// By default 10 ms.
    ///
    /// # Panics
    /// If `tick` is zero.
    #[track_caller]
    pub fn epoch_tick(&mut self, tick: Duration) -> &mut Self {
        assert!(!tick.is_zero(), "epoch_tick cannot be zero");
        self.epoch_tick = tick;
        self
    }

    /// The most stack, in bytes, wasm code may use; deeper recursion ends the process EXCEPTED
    /// with a stack overflow.
    ///
    /// By default 1 MiB.
    ///
    /// # Panics
    /// If `bytes` is below 64 KiB.
    #[track_caller]
    pub fn max_wasm_stack(&mut self, bytes: usize) -> &mut Self {
        assert!(bytes >= 64 << 10, "max_wasm_stack must be at least 64 KiB");
        self.max_wasm_stack = bytes;
        self
    }

    /// Keep compiled plugins in this directory, keyed by the component's SHA-256 digest, so a
    /// plugin is compiled once. Files are written atomically; one that does not load (another
    /// wasmtime version, a damaged file) is compiled again and replaced.
    ///
    /// By default there is no cache and every load compiles.
    pub fn cache_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Look plugins up by name in this directory (as `<name>.wasm`), after those added before.
    ///
    /// By default no directory: plugins are loaded by path only.
    pub fn plugin_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Self {
        self.plugin_dirs.push(dir.into());
        self
    }

    /// What plugins may reach of the outside world.
    pub fn sandbox(&mut self, sandbox: Sandbox) -> &mut Self {
        self.sandbox = sandbox;
        self
    }
}

/// The WASI capabilities given to plugins. Damson plugins need none: everything they do goes
/// through Damson's own imports.
///
/// # Defaults
/// - no environment variables
/// - no arguments
/// - no preopened directories (so no file can be opened)
/// - stdin closed; stdout and stderr discarded
/// - all network access denied (no TCP, no UDP, no name lookup)
#[derive(Debug, Clone, Default)]
pub struct Sandbox {
    /// Environment variables the plugin sees.
    pub env: Vec<(String, String)>,
    /// Arguments the plugin sees.
    pub args: Vec<String>,
    /// Host directories the plugin may open, as `(host path, guest path)`, read-only.
    pub read_only_dirs: Vec<(PathBuf, String)>,
    /// Whether the plugin's WASI stdout and stderr go to the host's stderr (for debugging only:
    /// a plugin that writes there holds a stream handle, which breaks its memory images).
    pub inherit_stdio: bool,
    /// Whether TCP, UDP and name lookups are allowed.
    pub network: bool,
}
