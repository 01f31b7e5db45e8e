//! Memory images: every mutable global and every linear memory of a plugin instance, read
//! between two calls and written back into a fresh instance of the same component.
//!
//! Wasmtime gives an embedder no handle on a component's inner globals and memories, so the
//! component is rewritten when it is loaded ([`super::instrument`]): its [`Accessor`] reads and
//! writes them from the host. An image is taken only at a quiescent point (no guest call
//! running) and is valid only for the exact component it came from (addresses are baked into
//! it). An image holds only the pages that differ from a fresh instance's ([`Fresh`]): Python's
//! runtime fills megabytes at instantiation that its steps never touch. A restore instantiates
//! the component, grows each memory to its size in the image, writes those pages, and sets the
//! globals last.
//!
//! An image is made of blocks, each the pages of one 64 KiB stretch of a memory that differ
//! from a fresh instance's, compressed on its own: the next image of the same instance copies
//! the compressed bytes of every block it holds unchanged ([`Blocks`], found by a 128-bit hash
//! of what the block holds) and compresses only those a step changed. Every image is whole (a
//! checkpoint never needs another to be restored); only the work of making it is incremental.
//!
//! Format: postcard [`Layout`] (the globals, each memory's size, the runs of 4 KiB pages that
//! differ from a fresh instance's, and each block's sizes and hash), then the blocks, each
//! LZ4-compressed (`lz4_flex` block format). Format 3 (the pages as one LZ4 block) is still read.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use wasmtime::Store;
use wasmtime::component::{Func, Instance, TypedFunc};

use super::instrument::accessor_name;

/// The unit of zero-page elision.
const PAGE: usize = 4096;
/// A WebAssembly page: memories grow by these.
const WASM_PAGE: usize = 65536;
/// How much one call reads or writes: what fits in the accessor's own memory as it is made
/// (see [`super::instrument::ACCESSOR_PAGES`]), which counts against the instance's memory
/// limit, so that a capture never grows it.
const CHUNK: usize = 64 << 10;
/// The image format version (1 held memories only, 2 every page that was not zero, 3 the pages
/// that differ from a fresh instance's in one compressed block).
const FORMAT: u8 = 4;
/// The older format still read: one compressed block, no [`BlockLayout`]s.
const FORMAT_ONE_BLOCK: u8 = 3;
/// Images of at least this many blocks are decompressed on a blocking thread, ahead of the
/// writes (on another processor, while the instance takes the page faults of the blocks
/// before); smaller ones inline, where a thread hand-off would cost more than it saves.
const AHEAD_FROM_BLOCKS: usize = 16;
/// How many blocks the decompression may be ahead of the writes.
const AHEAD_BLOCKS: usize = 8;

/// Why an image cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("the memory image cannot be decoded: {0}")]
    /// The bytes are not an image.
    Decode(String),
    #[error("the memory image does not fit this instance: {0}")]
    /// The image is of other globals or memories than this instance's.
    Mismatch(String),
    #[error(
        "the memory image was taken while the plugin held handles to host resources (a WASI \
         stream, say), which mean nothing to another instance, so it cannot be restored; a \
         plugin must log through the host's `log` import, not stdout or stderr"
    )]
    /// The instance held resource handles when the image was taken.
    HeldHandles,
}

/// Why a restore failed: the image, or the instance (a limit, a trap) while writing it.
#[derive(Debug)]
pub(crate) enum RestoreError {
    Image(ImageError),
    Instance(wasmtime::Error),
}

impl From<wasmtime::Error> for RestoreError {
    fn from(e: wasmtime::Error) -> Self {
        Self::Instance(e)
    }
}

/// The functions of an instrumented instance's accessors (handles: cheap to clone): one per
/// component instance that holds state, their globals and memories in one list each.
#[derive(Clone)]
pub(crate) struct Accessor {
    globals: Vec<GlobalsAccess>,
    memories: Vec<MemoryAccess>,
}

#[derive(Clone)]
struct GlobalsAccess {
    get: TypedFunc<(), (Vec<u64>,)>,
    set: TypedFunc<(Vec<u64>,), ()>,
}

#[derive(Clone)]
struct MemoryAccess {
    size: TypedFunc<(), (u32,)>,
    grow: TypedFunc<(u32,), (i32,)>,
    read: TypedFunc<(u32, u32), (Vec<u8>,)>,
    /// `(u32, list<u8>)`, called with borrowed bytes (a [`TypedFunc`] of a borrow is typed
    /// per call): a restore writes pages without copying them into vectors first.
    write: Func,
}

/// An accessor's `write`, typed for bytes borrowed for one call.
fn write_typed<'a, T>(
    write: &Func,
    store: &Store<T>,
) -> wasmtime::Result<TypedFunc<(u32, &'a [u8]), ()>> {
    write.typed::<(u32, &[u8]), ()>(store)
}

impl Accessor {
    /// The accessors of `instance`; `None` when its component was not instrumented.
    ///
    /// # Errors
    /// When an accessor's functions are not of the expected types.
    pub(crate) fn find<T>(
        store: &mut Store<T>,
        instance: &Instance,
    ) -> wasmtime::Result<Option<Self>> {
        let mut accessor = Self {
            globals: Vec::new(),
            memories: Vec::new(),
        };
        for n in 0.. {
            let Some(part) = instance.get_export_index(&mut *store, None, &accessor_name(n)) else {
                break;
            };
            let mut func = |name: &str| -> wasmtime::Result<_> {
                let index = instance
                    .get_export_index(&mut *store, Some(&part), name)
                    .ok_or_else(|| wasmtime::format_err!("accessor {n} has no `{name}`"))?;
                Ok(index)
            };
            let (get, set) = (func("globals-get")?, func("globals-set")?);
            let mut memories = Vec::new();
            for m in 0.. {
                let Some(size) =
                    instance.get_export_index(&mut *store, Some(&part), &format!("size-{m}"))
                else {
                    break;
                };
                let mut func = |name: &str| {
                    instance
                        .get_export_index(&mut *store, Some(&part), &format!("{name}-{m}"))
                        .ok_or_else(|| wasmtime::format_err!("accessor {n} has no `{name}-{m}`"))
                };
                memories.push((size, func("grow")?, func("read")?, func("write")?));
            }
            accessor.globals.push(GlobalsAccess {
                get: instance.get_typed_func(&mut *store, get)?,
                set: instance.get_typed_func(&mut *store, set)?,
            });
            for (size, grow, read, write) in memories {
                let write = instance.get_func(&mut *store, write).ok_or_else(|| {
                    wasmtime::format_err!("accessor {n}'s `write` is no function")
                })?;
                write_typed(&write, store)?;
                accessor.memories.push(MemoryAccess {
                    size: instance.get_typed_func(&mut *store, size)?,
                    grow: instance.get_typed_func(&mut *store, grow)?,
                    read: instance.get_typed_func(&mut *store, read)?,
                    write,
                });
            }
        }
        Ok((!accessor.globals.is_empty()).then_some(accessor))
    }

    /// Every accessor's globals, in order; and how many each has.
    async fn globals<T: Send>(
        &self,
        store: &mut Store<T>,
    ) -> wasmtime::Result<(Vec<u64>, Vec<usize>)> {
        let (mut all, mut counts) = (Vec::new(), Vec::with_capacity(self.globals.len()));
        for part in &self.globals {
            let (values,) = part.get.call_async(&mut *store, ()).await?;
            counts.push(values.len());
            all.extend(values);
        }
        Ok((all, counts))
    }

    /// Whether there is anything to image.
    pub(crate) fn is_empty(&self) -> bool {
        self.memories.is_empty()
    }

    /// Every global and every memory's bytes, read now (between guest calls).
    async fn read<T: Send>(
        &self,
        store: &mut Store<T>,
    ) -> wasmtime::Result<(Vec<u64>, Vec<Vec<u8>>)> {
        let (globals, _) = self.globals(store).await?;
        let mut memories = Vec::with_capacity(self.memories.len());
        for memory in &self.memories {
            let (pages,) = memory.size.call_async(&mut *store, ()).await?;
            let len = pages as usize * WASM_PAGE;
            let mut bytes = Vec::with_capacity(len);
            while bytes.len() < len {
                let n = CHUNK.min(len - bytes.len());
                let (chunk,) = memory
                    .read
                    .call_async(&mut *store, (bytes.len() as u32, n as u32))
                    .await?;
                bytes.extend_from_slice(&chunk);
            }
            memories.push(bytes);
        }
        Ok((globals, memories))
    }

    /// Take an image of every global and memory (between guest calls), as a delta against
    /// `fresh`, what every fresh instance of the component holds; the blocks `previous` holds
    /// (the last image's) are copied rather than compressed again. Also what the next image
    /// can reuse of this one.
    ///
    /// Memory is read one block at a time, never whole: a large memory costs no allocation
    /// of its size.
    ///
    /// `holds_handles` says that the instance holds handles to host resources: the image is
    /// taken, and refused by every restore ([`ImageError::HeldHandles`]).
    pub(crate) async fn capture<T: Send>(
        &self,
        store: &mut Store<T>,
        fresh: &Fresh,
        holds_handles: bool,
        previous: &Blocks,
    ) -> wasmtime::Result<(Vec<u8>, Blocks)> {
        let (globals, _) = self.globals(store).await?;
        let mut encoder = Encoder::new(globals, holds_handles, fresh, previous);
        for memory in &self.memories {
            let (pages,) = memory.size.call_async(&mut *store, ()).await?;
            let len = pages as usize * WASM_PAGE;
            encoder.memory(len);
            let mut at = 0;
            while at < len {
                let n = CHUNK.min(len - at);
                let (chunk,) = memory
                    .read
                    .call_async(&mut *store, (at as u32, n as u32))
                    .await?;
                encoder.block(at, &chunk);
                at += n;
            }
        }
        Ok(encoder.finish())
    }

    /// What this fresh instance's memories hold (what data segments and start functions wrote),
    /// for the images of every other instance of its component.
    pub(crate) async fn fresh<T: Send>(&self, store: &mut Store<T>) -> wasmtime::Result<Fresh> {
        let (_, memories) = self.read(store).await?;
        Ok(Fresh::of(memories))
    }

    /// Write `image` into this fresh instance (before its first call): the pages it holds are
    /// those that differ from a fresh instance's.
    pub(crate) async fn restore<T: Send>(
        &self,
        store: &mut Store<T>,
        image: &DecodedImage,
    ) -> Result<(), RestoreError> {
        let mismatch = |m: String| RestoreError::Image(ImageError::Mismatch(m));
        let layout = &image.layout;
        if layout.holds_handles {
            return Err(RestoreError::Image(ImageError::HeldHandles));
        }
        if layout.memories.len() != self.memories.len() {
            return Err(mismatch(format!(
                "the image has {} linear memories, the instance {}",
                layout.memories.len(),
                self.memories.len()
            )));
        }
        let (globals, counts) = self.globals(store).await?;
        if globals.len() != layout.globals.len() {
            return Err(mismatch(format!(
                "the image has {} mutable globals, the instance {}",
                layout.globals.len(),
                globals.len()
            )));
        }
        let mut reader = image.pages();
        for (i, (memory, saved)) in self.memories.iter().zip(&layout.memories).enumerate() {
            let (pages,) = memory.size.call_async(&mut *store, ()).await?;
            let fresh_len = pages as usize * WASM_PAGE;
            let len = saved.size as usize;
            if len < fresh_len {
                return Err(mismatch(format!(
                    "memory {i} is {fresh_len} bytes when fresh, its image {len}"
                )));
            }
            if len > fresh_len {
                let more = ((len - fresh_len) / WASM_PAGE) as u32;
                let (grown,) = memory.grow.call_async(&mut *store, (more,)).await?;
                if grown < 0 {
                    return Err(mismatch(format!("memory {i} cannot grow to {len} bytes")));
                }
            }
            // Only the pages that differ: each first touch of a page costs a fault. Each call
            // writes what one block holds of a run, straight from the block decompressed.
            for &(start, count) in &saved.runs {
                let (mut at, end) = (start as usize * PAGE, (start + count) as usize * PAGE);
                while at < end {
                    let bytes = reader.next(end - at).await.map_err(RestoreError::Image)?;
                    write_typed(&memory.write, store)?
                        .call_async(&mut *store, (at as u32, bytes))
                        .await?;
                    at += bytes.len();
                }
            }
        }
        // Last: the globals may say where the state the memories hold is.
        let mut rest = &layout.globals[..];
        for (part, count) in self.globals.iter().zip(counts) {
            let (these, others) = rest.split_at(count);
            part.set.call_async(&mut *store, (these.to_vec(),)).await?;
            rest = others;
        }
        Ok(())
    }
}

/// What a fresh instance of a component holds in its memories, page by page: images hold only
/// the pages that differ from it.
///
/// A delta is sound only if every instantiation fills memory alike. [`Fresh::unstable_against`]
/// compares two fresh instances and marks the pages they disagree on (a seed drawn at
/// instantiation, say), which every image then holds.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fresh {
    memories: Vec<FreshMemory>,
}

#[derive(Debug, Clone, Default)]
struct FreshMemory {
    /// What each page of the fresh memory is.
    pages: Vec<Reference>,
    /// The pages that are not zero, in order.
    bytes: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reference {
    Zero,
    /// Not the same in every fresh instance: always imaged.
    Unstable,
    /// The n-th non-zero page.
    At(u32),
}

impl Fresh {
    fn of(memories: Vec<Vec<u8>>) -> Self {
        let memories = memories
            .into_iter()
            .map(|memory| {
                let mut fresh = FreshMemory::default();
                for page in memory.chunks(PAGE) {
                    if is_zero(page) {
                        fresh.pages.push(Reference::Zero);
                    } else {
                        fresh
                            .pages
                            .push(Reference::At((fresh.bytes.len() / PAGE) as u32));
                        fresh.bytes.extend_from_slice(page);
                    }
                }
                fresh
            })
            .collect();
        Self { memories }
    }

    /// Mark the pages where `other`, another fresh instance, holds something else.
    pub(crate) fn unstable_against(&mut self, other: &Fresh) {
        for (m, memory) in self.memories.iter_mut().enumerate() {
            for (index, reference) in memory.pages.iter_mut().enumerate() {
                let ours = match *reference {
                    Reference::At(n) => &memory.bytes[n as usize * PAGE..][..PAGE],
                    _ => &ZEROS[..],
                };
                if !other.same(m, index, ours) {
                    *reference = Reference::Unstable;
                }
            }
        }
    }

    /// Whether `page`, the `index`-th of memory `m`, is what a fresh instance holds there.
    fn same(&self, m: usize, index: usize, page: &[u8]) -> bool {
        let Some(memory) = self.memories.get(m) else {
            return is_zero(page);
        };
        match memory.pages.get(index) {
            None | Some(Reference::Zero) => is_zero(page),
            Some(Reference::Unstable) => false,
            Some(Reference::At(n)) => page == &memory.bytes[*n as usize * PAGE..][..page.len()],
        }
    }
}

/// An image of `globals` and `memories` (whole): the pages that differ from `fresh`'s, in
/// blocks, those `previous` holds copied; and what the next image can reuse of this one.
#[cfg(test)]
fn encode(
    globals: &[u64],
    memories: &[Vec<u8>],
    fresh: &Fresh,
    holds_handles: bool,
    previous: &Blocks,
) -> (Vec<u8>, Blocks) {
    let mut encoder = Encoder::new(globals.to_vec(), holds_handles, fresh, previous);
    for bytes in memories {
        encoder.memory(bytes.len());
        for (n, chunk) in bytes.chunks(CHUNK).enumerate() {
            encoder.block(n * CHUNK, chunk);
        }
    }
    encoder.finish()
}

/// The compressed blocks of one image, by the hash of what each holds uncompressed: what the
/// next image of the same instance copies instead of compressing again.
///
/// A block is reused when its 128-bit XXH3 hash matches: blocks that differ yet hash alike are
/// not a practical concern for data a step writes (and a guest that forged one would only
/// damage its own image).
#[derive(Debug, Default)]
pub(crate) struct Blocks {
    /// Bytes that hold the compressed blocks: only those, one after another, for an image
    /// just taken; the whole image, for one restored (kept rather than copied).
    packed: Vec<u8>,
    /// Where in `packed` the block of each hash is.
    by_hash: HashMap<u128, (usize, usize)>,
    /// How many blocks the image compressed (the others it copied from the previous one).
    compressed: usize,
}

impl Blocks {
    fn find(&self, hash: u128) -> Option<&[u8]> {
        let &(at, len) = self.by_hash.get(&hash)?;
        Some(&self.packed[at..at + len])
    }
}

/// Makes an image memory by memory, one block (a 64 KiB stretch of a memory) at a time.
struct Encoder<'a> {
    fresh: &'a Fresh,
    previous: &'a Blocks,
    layout: Layout,
    /// Each block's sizes and hash, in order.
    listed: Vec<BlockLayout>,
    blocks: Blocks,
    /// The pages of the block being made that differ from a fresh instance's.
    pages: Vec<u8>,
}

impl<'a> Encoder<'a> {
    fn new(globals: Vec<u64>, holds_handles: bool, fresh: &'a Fresh, previous: &'a Blocks) -> Self {
        Self {
            fresh,
            previous,
            layout: Layout {
                format: FORMAT,
                holds_handles,
                globals,
                memories: Vec::new(),
                raw_len: 0,
            },
            listed: Vec::new(),
            blocks: Blocks::default(),
            pages: Vec::with_capacity(CHUNK),
        }
    }

    /// Start the next memory, of `size` bytes.
    fn memory(&mut self, size: usize) {
        self.layout.memories.push(MemoryLayout {
            size: size as u64,
            runs: Vec::new(),
        });
    }

    /// The bytes of the current memory from `at` (a multiple of [`PAGE`]): their pages that
    /// differ from a fresh instance's become one block.
    fn block(&mut self, at: usize, bytes: &[u8]) {
        let m = self.layout.memories.len() - 1;
        let runs = &mut self.layout.memories[m].runs;
        for (n, page) in bytes.chunks(PAGE).enumerate() {
            let index = at / PAGE + n;
            if self.fresh.same(m, index, page) {
                continue;
            }
            self.pages.extend_from_slice(page);
            let index = index as u32;
            match runs.last_mut() {
                Some((start, len)) if *start + *len == index => *len += 1,
                _ => runs.push((index, 1)),
            }
        }
        if self.pages.is_empty() {
            return;
        }
        let hash = xxhash_rust::xxh3::xxh3_128(&self.pages);
        let packed = &mut self.blocks.packed;
        let start = packed.len();
        match self.previous.find(hash) {
            Some(same) => packed.extend_from_slice(same),
            None => {
                self.blocks.compressed += 1;
                packed.resize(
                    start + lz4_flex::block::get_maximum_output_size(self.pages.len()),
                    0,
                );
                let n = lz4_flex::block::compress_into(&self.pages, &mut packed[start..])
                    .expect("the buffer holds the largest output");
                packed.truncate(start + n);
            }
        }
        let len = packed.len() - start;
        self.blocks.by_hash.entry(hash).or_insert((start, len));
        self.listed.push(BlockLayout {
            raw: self.pages.len() as u32,
            packed: len as u32,
            hash,
        });
        self.layout.raw_len += self.pages.len() as u64;
        self.pages.clear();
    }

    /// The image, and its blocks for the next one.
    fn finish(self) -> (Vec<u8>, Blocks) {
        let mut image = postcard::to_stdvec(&self.layout).expect("a layout always serialises");
        image.extend_from_slice(&postcard::to_stdvec(&self.listed).expect("blocks serialise"));
        image.extend_from_slice(&self.blocks.packed);
        (image, self.blocks)
    }
}

/// The globals and memories of an image: the memories' sizes and runs of non-zero pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Layout {
    format: u8,
    /// Whether the instance held handles to host resources (then no restore takes it).
    holds_handles: bool,
    /// Every captured global, in the accessor's order.
    globals: Vec<u64>,
    memories: Vec<MemoryLayout>,
    /// Bytes of the uncompressed payload.
    raw_len: u64,
}

/// One block of an image: some pages, compressed on their own. Format 4 lists them (postcard)
/// after the [`Layout`].
#[derive(Debug, Clone, Serialize, Deserialize)]
struct BlockLayout {
    /// Bytes of its pages, uncompressed.
    raw: u32,
    /// Bytes it takes compressed.
    packed: u32,
    /// XXH3-128 of its pages, uncompressed.
    hash: u128,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemoryLayout {
    size: u64,
    /// `(first page, number of pages)` of each run of pages that differ from a fresh
    /// instance's.
    runs: Vec<(u32, u32)>,
}

/// An image, checked, ready to write back: its blocks are decompressed only as they are
/// written, one at a time, so that a restore makes no copy of the whole memory (for a large
/// guest that copy and its page faults cost as much as the decompression).
#[derive(Debug, Clone)]
pub(crate) struct DecodedImage {
    layout: Layout,
    pages: Pages,
    blocks: Arc<Blocks>,
}

/// Where an image's pages are.
#[derive(Debug, Clone)]
enum Pages {
    /// Format 3: decompressed when the image was decoded.
    Whole(Vec<u8>),
    /// Format 4: each block and where its compressed bytes start in [`Blocks::packed`]; each
    /// is checked against its hash as it is decompressed.
    Listed(Arc<[(BlockLayout, usize)]>),
}

/// Decompress block `i` of an image whose compressed blocks `packed` holds, placed as `placed`
/// says (its sizes and hash, and where it starts), and check it against its hash: a block whose
/// hash is wrong would be copied into later images for other pages.
fn unpack_block(
    packed: &[u8],
    (block, at): &(BlockLayout, usize),
    i: usize,
) -> Result<Vec<u8>, ImageError> {
    let (raw, len) = (block.raw as usize, block.packed as usize);
    let pages = lz4_flex::block::decompress(&packed[*at..*at + len], raw)
        .map_err(|e| ImageError::Decode(format!("block {i} does not decompress: {e}")))?;
    if pages.len() != raw || xxhash_rust::xxh3::xxh3_128(&pages) != block.hash {
        return Err(ImageError::Decode(format!(
            "block {i} does not hold what its hash says"
        )));
    }
    Ok(pages)
}

/// The blocks of format-4 `image`, whose block list (then the blocks) starts at `at`,
/// `raw_len` bytes of pages in all, each block's sizes checked against the image's; and its
/// blocks, for the next image (the image itself, kept whole: no copy). The blocks are not
/// decompressed here ([`PageReader`] does, and checks their hashes).
fn unpack(
    image: Vec<u8>,
    at: usize,
    raw_len: usize,
) -> Result<(Vec<(BlockLayout, usize)>, Blocks), ImageError> {
    let decode = |m: String| ImageError::Decode(m);
    let (listed, packed): (Vec<BlockLayout>, &[u8]) = postcard::take_from_bytes(&image[at..])
        .map_err(|e| decode(format!("its block list: {e}")))?;
    let start = image.len() - packed.len();
    let mut placed = Vec::with_capacity(listed.len());
    let mut by_hash = HashMap::with_capacity(listed.len());
    let (mut raw_at, mut packed_at) = (0, 0);
    for (i, block) in listed.into_iter().enumerate() {
        let (raw, len) = (block.raw as usize, block.packed as usize);
        // A block holds pages of one 64 KiB stretch of a memory, at least one.
        if raw == 0 || raw > CHUNK {
            return Err(decode(format!(
                "block {i} holds {raw} bytes of pages (from 1 to {CHUNK})"
            )));
        }
        if raw_at + raw > raw_len || packed_at + len > packed.len() {
            return Err(decode(format!(
                "block {i} lies beyond the {raw_len} bytes of pages or the {} compressed",
                packed.len()
            )));
        }
        by_hash
            .entry(block.hash)
            .or_insert((start + packed_at, len));
        placed.push((block, start + packed_at));
        (raw_at, packed_at) = (raw_at + raw, packed_at + len);
    }
    if raw_at != raw_len || packed_at != packed.len() {
        return Err(decode(format!(
            "the blocks hold {raw_at} bytes of pages in {packed_at} compressed; the layout lists \
             {raw_len}, the image holds {} compressed",
            packed.len()
        )));
    }
    let blocks = Blocks {
        packed: image,
        by_hash,
        compressed: 0,
    };
    Ok((placed, blocks))
}

/// An image's pages in order, as [`Accessor::restore`] writes them: one block decompressed at
/// a time (for a large image, a few ahead on another thread).
struct PageReader<'a> {
    image: &'a DecodedImage,
    /// The next block to decompress.
    next_block: usize,
    /// The blocks decompressed ahead, in order, for an image of [`AHEAD_FROM_BLOCKS`] or more.
    ahead: Option<tokio::sync::mpsc::Receiver<Result<Vec<u8>, ImageError>>>,
    /// The pages of the block decompressed last.
    current: Vec<u8>,
    /// How much of `current` (for format 3, of the whole pages) has been read.
    read: usize,
}

impl PageReader<'_> {
    /// The next bytes of pages: at most `most`, and no more than one block's (or, format 3,
    /// one [`CHUNK`]).
    ///
    /// # Errors
    /// When a block does not decompress or does not hold what its hash says: a block whose
    /// hash is wrong would be copied into later images for other pages.
    async fn next(&mut self, most: usize) -> Result<&[u8], ImageError> {
        let (bytes, read) = match &self.image.pages {
            Pages::Whole(pages) => (&pages[..], self.read),
            Pages::Listed(listed) => {
                if self.read == self.current.len() {
                    let i = self.next_block;
                    let placed = listed.get(i).ok_or_else(|| {
                        ImageError::Decode(
                            "its blocks end before the pages its layout lists".into(),
                        )
                    })?;
                    self.current = match &mut self.ahead {
                        Some(ahead) => ahead.recv().await.unwrap_or_else(|| {
                            Err(ImageError::Decode(format!(
                                "the decompression of its blocks stopped before block {i}"
                            )))
                        })?,
                        None => unpack_block(&self.image.blocks.packed, placed, i)?,
                    };
                    (self.next_block, self.read) = (i + 1, 0);
                }
                (&self.current[..], self.read)
            }
        };
        let n = most.min(CHUNK).min(bytes.len() - read);
        self.read += n;
        Ok(&bytes[read..read + n])
    }
}

impl DecodedImage {
    /// Check and decompress an image (kept, for the blocks the next image reuses).
    pub(crate) fn decode(bytes: Vec<u8>) -> Result<Self, ImageError> {
        let decode = |m: String| ImageError::Decode(m);
        let (layout, compressed): (Layout, _) =
            postcard::take_from_bytes(&bytes).map_err(|e| decode(e.to_string()))?;
        if layout.format != FORMAT && layout.format != FORMAT_ONE_BLOCK {
            return Err(decode(format!(
                "image format {} (this host reads {FORMAT_ONE_BLOCK} and {FORMAT})",
                layout.format
            )));
        }
        let mut expected = 0u64;
        for (i, memory) in layout.memories.iter().enumerate() {
            if memory.size % WASM_PAGE as u64 != 0 || memory.size > 1 << 32 {
                return Err(decode(format!(
                    "memory {i} is {} bytes, not a whole number of WebAssembly pages up to 4 GiB",
                    memory.size
                )));
            }
            let pages = memory.size / PAGE as u64;
            let mut end = 0u64;
            for &(start, len) in &memory.runs {
                if u64::from(start) < end || u64::from(start) + u64::from(len) > pages {
                    return Err(decode(format!(
                        "memory {i}: pages {start}..{} overlap or lie beyond its {} bytes",
                        u64::from(start) + u64::from(len),
                        memory.size
                    )));
                }
                end = u64::from(start) + u64::from(len);
                expected += u64::from(len) * PAGE as u64;
            }
        }
        if expected != layout.raw_len {
            return Err(decode(format!(
                "the layout lists {expected} bytes of pages, the payload {}",
                layout.raw_len
            )));
        }
        let (pages, blocks) = match layout.format {
            FORMAT => {
                let at = bytes.len() - compressed.len();
                let (listed, blocks) = unpack(bytes, at, layout.raw_len as usize)?;
                (Pages::Listed(listed.into()), blocks)
            }
            FORMAT_ONE_BLOCK => {
                let payload = lz4_flex::block::decompress(compressed, layout.raw_len as usize)
                    .map_err(|e| decode(format!("the pages do not decompress: {e}")))?;
                if payload.len() as u64 != layout.raw_len {
                    return Err(decode("the pages decompress to the wrong length".into()));
                }
                (Pages::Whole(payload), Blocks::default())
            }
            _ => unreachable!("the format was checked"),
        };
        Ok(Self {
            layout,
            pages,
            blocks: Arc::new(blocks),
        })
    }

    /// A reader of the image's pages, in order.
    fn pages(&self) -> PageReader<'_> {
        let ahead = match (&self.pages, tokio::runtime::Handle::try_current()) {
            (Pages::Listed(listed), Ok(runtime)) if listed.len() >= AHEAD_FROM_BLOCKS => {
                let (send, ahead) = tokio::sync::mpsc::channel(AHEAD_BLOCKS);
                let (listed, blocks) = (listed.clone(), self.blocks.clone());
                // Stops at the first block that fails, or when the restore gives up.
                runtime.spawn_blocking(move || {
                    for (i, placed) in listed.iter().enumerate() {
                        let block = unpack_block(&blocks.packed, placed, i);
                        let failed = block.is_err();
                        if send.blocking_send(block).is_err() || failed {
                            break;
                        }
                    }
                });
                Some(ahead)
            }
            _ => None,
        };
        PageReader {
            image: self,
            next_block: 0,
            ahead,
            current: Vec::new(),
            read: 0,
        }
    }

    /// Every page the image holds, in order, decompressed.
    #[cfg(test)]
    async fn payload(&self) -> Result<Vec<u8>, ImageError> {
        let mut reader = self.pages();
        let mut payload = Vec::with_capacity(self.layout.raw_len as usize);
        while payload.len() < self.layout.raw_len as usize {
            payload.extend_from_slice(reader.next(CHUNK).await?);
        }
        Ok(payload)
    }

    /// The image's blocks, for the next image of the instance it is restored into.
    pub(crate) fn blocks(&self) -> Arc<Blocks> {
        self.blocks.clone()
    }

    /// Memory `m` as it was imaged against `fresh`.
    #[cfg(test)]
    async fn memory(&self, m: usize, fresh: &Fresh) -> Result<Vec<u8>, ImageError> {
        let payload = self.payload().await?;
        let offset: usize = self.layout.memories[..m]
            .iter()
            .flat_map(|l| &l.runs)
            .map(|&(_, len)| len as usize * PAGE)
            .sum();
        let layout = &self.layout.memories[m];
        let mut bytes = vec![0; layout.size as usize];
        if let Some(memory) = fresh.memories.get(m) {
            for (index, reference) in memory.pages.iter().enumerate() {
                if let Reference::At(n) = reference {
                    bytes[index * PAGE..][..PAGE]
                        .copy_from_slice(&memory.bytes[*n as usize * PAGE..][..PAGE]);
                }
            }
        }
        let mut at = offset;
        for &(start, len) in &layout.runs {
            let (start, len) = (start as usize * PAGE, len as usize * PAGE);
            bytes[start..start + len].copy_from_slice(&payload[at..at + len]);
            at += len;
        }
        Ok(bytes)
    }
}

static ZEROS: [u8; PAGE] = [0; PAGE];

fn is_zero(page: &[u8]) -> bool {
    // A comparison with a page of zeros is a `memcmp`, which libc vectorises.
    page == &ZEROS[..page.len()]
}

#[cfg(test)]
mod tests {
    use wasmtime::component::{Component, Linker};
    use wasmtime::{Config, Engine};

    use super::*;

    fn memory_with(writes: &[(usize, u8)], size: usize) -> Vec<u8> {
        let mut bytes = vec![0; size];
        for &(at, value) in writes {
            bytes[at] = value;
        }
        bytes
    }

    #[tokio::test]
    async fn an_image_keeps_every_byte_and_global_and_holds_only_the_pages_a_fresh_instance_has_not()
     {
        let size = 64 * 1024;
        let fresh = Fresh::of(vec![memory_with(&[(0, 1), (5000, 2), (9000, 7)], size)]);
        let memories = [
            // Page 2 cleared, page 15 written; pages 0 and 1 as fresh.
            memory_with(&[(0, 1), (5000, 2), (65535, 3)], size),
            // A memory a fresh instance has not: its zero pages are left out.
            memory_with(&[(70000, 4)], 2 * size),
        ];
        let image = encode(&[7, u64::MAX], &memories, &fresh, false, &Blocks::default()).0;
        let decoded = DecodedImage::decode(image.clone()).unwrap();
        assert_eq!(decoded.layout.globals, [7, u64::MAX]);
        assert_eq!(decoded.layout.memories[0].runs, [(2, 1), (15, 1)]);
        assert_eq!(decoded.layout.memories[1].runs, [(17, 1)]);
        assert_eq!(decoded.memory(0, &fresh).await.unwrap(), memories[0]);
        assert_eq!(decoded.memory(1, &fresh).await.unwrap(), memories[1]);
    }

    #[tokio::test]
    async fn pages_two_fresh_instances_disagree_on_are_always_imaged() {
        let size = 64 * 1024;
        let mut fresh = Fresh::of(vec![memory_with(&[(0, 1), (5000, 2)], size)]);
        fresh.unstable_against(&Fresh::of(vec![memory_with(&[(0, 9), (5000, 2)], size)]));
        let unchanged = memory_with(&[(0, 1), (5000, 2)], size);
        let image = encode(
            &[],
            std::slice::from_ref(&unchanged),
            &fresh,
            false,
            &Blocks::default(),
        )
        .0;
        let decoded = DecodedImage::decode(image.clone()).unwrap();
        assert_eq!(decoded.layout.memories[0].runs, [(0, 1)]);
        assert_eq!(decoded.memory(0, &fresh).await.unwrap(), unchanged);
    }

    #[tokio::test]
    async fn the_next_image_compresses_only_the_blocks_a_step_changed() {
        let size = 16 * CHUNK;
        let fresh = Fresh::default();
        let text = |seed: u8| -> Vec<u8> { (0..size).map(|i| (i / 7) as u8 ^ seed).collect() };
        let before = text(1);
        let (first, blocks) = encode(
            &[1],
            std::slice::from_ref(&before),
            &fresh,
            false,
            &Blocks::default(),
        );
        assert_eq!(
            blocks.compressed, 16,
            "the first image compresses every block"
        );

        // A step writes into one block of sixteen.
        let mut after = before.clone();
        after[5 * CHUNK + 100] ^= 0xff;
        let (second, reused) = encode(&[2], &[after.clone()], &fresh, false, &blocks);
        assert_eq!(reused.compressed, 1, "only the block the step changed");
        let decoded = DecodedImage::decode(second.clone()).unwrap();
        assert_eq!(decoded.memory(0, &fresh).await.unwrap(), after);
        assert_eq!(decoded.layout.globals, [2]);

        // A restored image's blocks serve the next image as well as the last one taken.
        let restored = DecodedImage::decode(first.clone()).unwrap().blocks();
        let (again, from_restored) = encode(&[2], &[after], &fresh, false, &restored);
        assert_eq!(from_restored.compressed, 1);
        assert_eq!(again, second, "the same image, whichever blocks it reused");
    }

    #[tokio::test]
    async fn a_block_that_does_not_hold_what_its_hash_says_is_refused() {
        let fresh = Fresh::default();
        let memory: Vec<u8> = (0..2 * CHUNK).map(|i| (i % 251) as u8).collect();
        let (image, blocks) = encode(&[], &[memory], &fresh, false, &Blocks::default());
        // A byte of the compressed blocks flipped is refused, unless the block still
        // decompresses to the very same pages (LZ4 can say one thing in several ways): the
        // hash is checked as each block is decompressed to be written back, so a damaged
        // block never reaches an instance nor is copied into later images.
        let pages = DecodedImage::decode(image.clone())
            .unwrap()
            .payload()
            .await
            .unwrap();
        let blocks_start = image.len() - blocks.packed.len();
        let mut refused = 0;
        for i in blocks_start..image.len() {
            let mut bad = image.clone();
            bad[i] ^= 0x01;
            let payload = match DecodedImage::decode(bad.clone()) {
                Ok(decoded) => decoded.payload().await,
                Err(e) => Err(e),
            };
            match payload {
                Err(_) => refused += 1,
                Ok(payload) => assert_eq!(payload, pages, "byte {i} flipped"),
            }
        }
        assert!(
            refused > (image.len() - blocks_start) / 2,
            "{refused} refused"
        );
    }

    #[tokio::test]
    async fn a_large_image_is_decompressed_ahead_and_a_bad_block_in_it_still_refused() {
        let fresh = Fresh::default();
        let blocks = AHEAD_FROM_BLOCKS + AHEAD_BLOCKS + 3;
        let memory: Vec<u8> = (0..blocks * CHUNK).map(|i| (i / 7 % 251) as u8).collect();
        let (image, _) = encode(
            &[],
            std::slice::from_ref(&memory),
            &fresh,
            false,
            &Blocks::default(),
        );
        let decoded = DecodedImage::decode(image.clone()).unwrap();
        assert!(
            decoded.pages().ahead.is_some(),
            "decompressed on another thread"
        );
        assert_eq!(decoded.memory(0, &fresh).await.unwrap(), memory);
        // The last byte of the last block flipped (an LZ4 block ends with literals: its pages
        // change): every block before it is written, then it is refused.
        let mut bad = image;
        *bad.last_mut().unwrap() ^= 1;
        let error = DecodedImage::decode(bad)
            .unwrap()
            .payload()
            .await
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "the memory image cannot be decoded: block {} does not hold what its hash says",
                blocks - 1
            )
        );
    }

    #[tokio::test]
    async fn an_image_of_the_older_one_block_format_is_still_read() {
        let fresh = Fresh::default();
        let memory = memory_with(&[(10, 3), (70000, 4)], 2 * CHUNK);
        let layout = Layout {
            format: FORMAT_ONE_BLOCK,
            holds_handles: false,
            globals: vec![9],
            memories: vec![MemoryLayout {
                size: memory.len() as u64,
                runs: vec![(0, 1), (17, 1)],
            }],
            raw_len: 2 * PAGE as u64,
        };
        let mut pages = memory[..PAGE].to_vec();
        pages.extend_from_slice(&memory[17 * PAGE..18 * PAGE]);
        let mut image = postcard::to_stdvec(&layout).unwrap();
        image.extend_from_slice(&lz4_flex::block::compress(&pages));
        let decoded = DecodedImage::decode(image.clone()).unwrap();
        assert_eq!(decoded.memory(0, &fresh).await.unwrap(), memory);
        assert_eq!(decoded.layout.globals, [9]);
    }

    #[tokio::test]
    async fn damaged_images_are_refused_not_trusted() {
        let fresh = Fresh::default();
        let image = encode(
            &[1, 2],
            &[memory_with(&[(0, 1), (9000, 2)], 64 * 1024)],
            &fresh,
            false,
            &Blocks::default(),
        )
        .0;
        for cut in 0..image.len() {
            assert!(
                DecodedImage::decode(image[..cut].to_vec()).is_err(),
                "an image cut to {cut} of {} bytes is refused",
                image.len()
            );
        }
        // A flipped byte in the layout is refused; one in the pages may decode, but whatever
        // decodes stays within the sizes it names.
        let mut refused = 0;
        for i in 0..image.len() {
            let mut bad = image.clone();
            bad[i] ^= 0xff;
            let Ok(decoded) = DecodedImage::decode(bad.clone()) else {
                refused += 1;
                continue;
            };
            for m in 0..decoded.layout.memories.len() {
                match decoded.memory(m, &fresh).await {
                    Err(_) => refused += 1,
                    Ok(memory) => {
                        assert_eq!(memory.len() as u64, decoded.layout.memories[m].size)
                    }
                }
            }
        }
        assert!(refused > 0, "no damage was noticed at all");
        // What stops a damaged image for good is the checksum of the bundle it travels in:
        // every flipped byte of such a bundle is refused.
        let bundle = crate::persist::bundle::encode(&7u8, Some(&image));
        for i in 0..bundle.len() {
            let mut bad = bundle.clone();
            bad[i] ^= 0xff;
            assert!(
                crate::persist::bundle::decode::<u8>(&bad).is_err(),
                "a bundle with byte {i} flipped is refused"
            );
        }
    }

    /// A counter in a global and a history in memory that data segments start non-zero.
    const COUNTER: &str = r#"(component
      (core module $m
        (memory 2)
        (data (i32.const 70000) "x")
        (data (i32.const 8) "seed")
        (global $n (mut i32) (i32.const 0))
        (func (export "bump") (result i32)
          (global.set $n (i32.add (global.get $n) (i32.const 1)))
          (if (i32.eq (global.get $n) (i32.const 2))
            (then (drop (memory.grow (i32.const 2)))
                  (i32.store (i32.const 8) (i32.const 0))))
          (i32.store (i32.mul (global.get $n) (i32.const 40000)) (global.get $n))
          (i32.add (global.get $n)
            (i32.add (i32.load (i32.const 8))
              (i32.add (i32.load (i32.const 40000)) (i32.load (i32.const 120000)))))))
      (core instance $i (instantiate $m))
      (func (export "bump") (result u32) (canon lift (core func $i "bump"))))"#;

    /// A fresh instance of an instrumented `component`, and its accessor.
    async fn instantiated(
        engine: &Engine,
        component: &Component,
    ) -> (Store<()>, Instance, Accessor) {
        let mut store = Store::new(engine, ());
        let instance = Linker::<()>::new(engine)
            .instantiate_async(&mut store, component)
            .await
            .unwrap();
        let accessor = Accessor::find(&mut store, &instance).unwrap().unwrap();
        (store, instance, accessor)
    }

    /// A nested component with a counter in a global and a history in memory, instantiated
    /// twice (as componentize-qjs's output nests its state).
    const NESTED: &str = r#"(component
      (component $c
        (core module $m
          (memory 1)
          (global $n (mut i32) (i32.const 0))
          (func (export "bump") (param i32) (result i32)
            (global.set $n (i32.add (global.get $n) (local.get 0)))
            (i32.store (i32.mul (global.get $n) (i32.const 4)) (global.get $n))
            (i32.add (global.get $n) (i32.load (i32.const 4)))))
        (core instance $i (instantiate $m))
        (func (export "bump") (param "by" u32) (result u32) (canon lift (core func $i "bump"))))
      (instance $x (instantiate $c))
      (instance $y (instantiate $c))
      (alias export $x "bump" (func $bx))
      (alias export $y "bump" (func $by))
      (export "bump-x" (func $bx))
      (export "bump-y" (func $by)))"#;

    #[tokio::test]
    async fn the_state_of_nested_components_is_imaged_and_restored() {
        let engine = Engine::new(&Config::new()).unwrap();
        let instrumented =
            super::super::instrument::instrument(&wat::parse_str(NESTED).unwrap()).unwrap();
        assert_eq!(
            instrumented.captured.accessors, 2,
            "one per nested instance"
        );
        let component = Component::new(&engine, &instrumented.bytes).unwrap();
        let fresh = || async {
            let (mut store, instance, accessor) = instantiated(&engine, &component).await;
            let mut bump = |name| {
                instance
                    .get_typed_func::<(u32,), (u32,)>(&mut store, name)
                    .unwrap()
            };
            let (x, y) = (bump("bump-x"), bump("bump-y"));
            (store, x, y, accessor)
        };
        let (mut store, x, y, accessor) = fresh().await;
        assert_eq!(accessor.memories.len(), 2);
        let before = accessor.fresh(&mut store).await.unwrap();
        for by in [1, 2, 3] {
            x.call_async(&mut store, (by,)).await.unwrap();
        }
        y.call_async(&mut store, (5,)).await.unwrap();
        let image = accessor
            .capture(&mut store, &before, false, &Blocks::default())
            .await
            .unwrap()
            .0;

        let (mut other, other_x, other_y, other_accessor) = fresh().await;
        let decoded = DecodedImage::decode(image.clone()).unwrap();
        assert_eq!(decoded.layout.globals, [6, 5], "x's counter, then y's");
        other_accessor.restore(&mut other, &decoded).await.unwrap();
        assert_eq!(
            other_accessor
                .capture(&mut other, &before, false, &decoded.blocks())
                .await
                .unwrap()
                .0,
            image,
            "a restored instance images as the original, reusing every block"
        );
        for (theirs, ours) in [(&x, &other_x), (&y, &other_y), (&x, &other_x)] {
            let theirs = theirs.call_async(&mut store, (7,)).await.unwrap();
            let ours = ours.call_async(&mut other, (7,)).await.unwrap();
            assert_eq!(ours, theirs);
        }
    }

    #[tokio::test]
    async fn a_restored_instance_carries_on_as_the_original_does() {
        let engine = Engine::new(&Config::new()).unwrap();
        let bytes = super::super::instrument::instrument(&wat::parse_str(COUNTER).unwrap())
            .unwrap()
            .bytes;
        let component = Component::new(&engine, &bytes).unwrap();
        let fresh = || async {
            let (mut store, instance, accessor) = instantiated(&engine, &component).await;
            let bump = instance
                .get_typed_func::<(), (u32,)>(&mut store, "bump")
                .unwrap();
            (store, bump, accessor)
        };
        let (mut store, bump, accessor) = fresh().await;
        let before = accessor.fresh(&mut store).await.unwrap();
        for _ in 0..3 {
            bump.call_async(&mut store, ()).await.unwrap();
        }
        // The third call cleared the seed a data segment wrote: that page differs from a fresh
        // instance's, and the restore must write it.
        let image = accessor
            .capture(&mut store, &before, false, &Blocks::default())
            .await
            .unwrap()
            .0;

        let (mut other, other_bump, other_accessor) = fresh().await;
        let decoded = DecodedImage::decode(image.clone()).unwrap();
        assert_eq!(decoded.layout.memories[0].runs[0], (0, 1));
        other_accessor.restore(&mut other, &decoded).await.unwrap();
        assert_eq!(
            other_accessor
                .capture(&mut other, &before, false, &decoded.blocks())
                .await
                .unwrap()
                .0,
            image,
            "a restored instance images as the original, reusing every block"
        );
        for _ in 0..2 {
            let theirs = bump.call_async(&mut store, ()).await.unwrap();
            let ours = other_bump.call_async(&mut other, ()).await.unwrap();
            assert_eq!(ours, theirs);
        }

        // An image of other memories is refused.
        let (mut third, _, third_accessor) = fresh().await;
        let two = encode(
            &[0],
            &[vec![0; 65536], vec![0; 65536]],
            &before,
            false,
            &Blocks::default(),
        )
        .0;
        let two = DecodedImage::decode(two.clone()).unwrap();
        assert!(matches!(
            third_accessor.restore(&mut third, &two).await,
            Err(RestoreError::Image(ImageError::Mismatch(_)))
        ));
        let globals = encode(
            &[0, 0],
            &[vec![0; 65536 * 2]],
            &before,
            false,
            &Blocks::default(),
        )
        .0;
        let globals = DecodedImage::decode(globals.clone()).unwrap();
        assert!(matches!(
            third_accessor.restore(&mut third, &globals).await,
            Err(RestoreError::Image(ImageError::Mismatch(_)))
        ));
        // So is one taken while the instance held handles to host resources.
        let holding = accessor
            .capture(&mut store, &before, true, &Blocks::default())
            .await
            .unwrap()
            .0;
        let holding = DecodedImage::decode(holding.clone()).unwrap();
        assert!(matches!(
            third_accessor.restore(&mut third, &holding).await,
            Err(RestoreError::Image(ImageError::HeldHandles))
        ));
    }
}
