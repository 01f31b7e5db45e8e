//! Memory images: every mutable global and every linear memory of a plugin instance, read
//! between two calls and written back into a fresh instance of the same component.
//!
//! Wasmtime gives an embedder no handle on a component's inner globals and memories, so the
//! component is rewritten when it is loaded ([`super::instrument`]): its [`Accessor`] reads and
//! writes them from the host. An image is taken only at a quiescent point (no guest call
//! running) and is valid only for the exact component it came from (addresses are baked into
//! it). A restore grows each memory to its size in the image, writes it (zeroing what a fresh
//! instance's data segments put where the image has zeros), and sets the globals last.
//!
//! Format: postcard [`Layout`] (the globals, each memory's size and the runs of 4 KiB pages
//! that are not all zero), then the non-zero pages, LZ4-compressed (`lz4_flex` block format).

use serde::{Deserialize, Serialize};
use wasmtime::Store;
use wasmtime::component::{Instance, TypedFunc};

use super::instrument::ACCESSOR;

/// The unit of zero-page elision.
const PAGE: usize = 4096;
/// A WebAssembly page: memories grow by these.
const WASM_PAGE: usize = 65536;
/// How much one call reads or writes: what fits in the accessor's own memory as it is made
/// (see [`super::instrument::ACCESSOR_PAGES`]), which counts against the instance's memory
/// limit, so that a capture never grows it.
const CHUNK: usize = 64 << 10;
/// The image format version (1 held memories only).
const FORMAT: u8 = 2;

/// Why an image cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("the memory image cannot be decoded: {0}")]
    /// The bytes are not an image.
    Decode(String),
    #[error("the memory image does not fit this instance: {0}")]
    /// The image is of other globals or memories than this instance's.
    Mismatch(String),
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

/// The functions of an instrumented instance's accessor (handles: cheap to clone).
#[derive(Clone)]
pub(crate) struct Accessor {
    globals_get: TypedFunc<(), (Vec<u64>,)>,
    globals_set: TypedFunc<(Vec<u64>,), ()>,
    memories: Vec<MemoryAccess>,
}

#[derive(Clone)]
struct MemoryAccess {
    size: TypedFunc<(), (u32,)>,
    grow: TypedFunc<(u32,), (i32,)>,
    read: TypedFunc<(u32, u32), (Vec<u8>,)>,
    write: TypedFunc<(u32, Vec<u8>), ()>,
    zero: TypedFunc<(u32, u32), ()>,
}

impl Accessor {
    /// The accessor of `instance`; `None` when its component was not instrumented.
    ///
    /// # Errors
    /// When the accessor's functions are not of the expected types.
    pub(crate) fn find<T>(
        store: &mut Store<T>,
        instance: &Instance,
    ) -> wasmtime::Result<Option<Self>> {
        let Some(accessor) = instance.get_export_index(&mut *store, None, ACCESSOR) else {
            return Ok(None);
        };
        let mut func = |name: &str| {
            instance
                .get_export_index(&mut *store, Some(&accessor), name)
                .ok_or_else(|| wasmtime::format_err!("the accessor has no `{name}`"))
        };
        let (get, set) = (func("globals-get")?, func("globals-set")?);
        let mut names = Vec::new();
        for m in 0.. {
            let Some(size) =
                instance.get_export_index(&mut *store, Some(&accessor), &format!("size-{m}"))
            else {
                break;
            };
            let mut func = |name: &str| {
                instance
                    .get_export_index(&mut *store, Some(&accessor), &format!("{name}-{m}"))
                    .ok_or_else(|| wasmtime::format_err!("the accessor has no `{name}-{m}`"))
            };
            names.push((
                size,
                func("grow")?,
                func("read")?,
                func("write")?,
                func("zero")?,
            ));
        }
        let memories = names
            .into_iter()
            .map(|(size, grow, read, write, zero)| {
                Ok(MemoryAccess {
                    size: instance.get_typed_func(&mut *store, size)?,
                    grow: instance.get_typed_func(&mut *store, grow)?,
                    read: instance.get_typed_func(&mut *store, read)?,
                    write: instance.get_typed_func(&mut *store, write)?,
                    zero: instance.get_typed_func(&mut *store, zero)?,
                })
            })
            .collect::<wasmtime::Result<_>>()?;
        Ok(Some(Self {
            globals_get: instance.get_typed_func(&mut *store, get)?,
            globals_set: instance.get_typed_func(&mut *store, set)?,
            memories,
        }))
    }

    /// Whether there is anything to image.
    pub(crate) fn is_empty(&self) -> bool {
        self.memories.is_empty()
    }

    /// Take an image of every global and memory (between guest calls).
    pub(crate) async fn capture<T: Send>(&self, store: &mut Store<T>) -> wasmtime::Result<Vec<u8>> {
        let (globals,) = self.globals_get.call_async(&mut *store, ()).await?;
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
        Ok(encode(&globals, &memories))
    }

    /// Which pages of this fresh instance's memories are not zero (what data segments and start
    /// functions wrote): what a restore must clear where an image has zeros. Instantiation is
    /// deterministic, so one fresh instance tells for every other.
    pub(crate) async fn fresh<T: Send>(&self, store: &mut Store<T>) -> wasmtime::Result<Fresh> {
        let image = DecodedImage::decode(&self.capture(store).await?)
            .map_err(|e| wasmtime::format_err!("{e}"))?;
        Ok(Fresh {
            runs: image.layout.memories.into_iter().map(|m| m.runs).collect(),
        })
    }

    /// Write `image` into this fresh instance (before its first call). `fresh` says which of
    /// its pages are not zero; without it, every page is cleared first.
    pub(crate) async fn restore<T: Send>(
        &self,
        store: &mut Store<T>,
        image: &DecodedImage,
        fresh: Option<&Fresh>,
    ) -> Result<(), RestoreError> {
        let mismatch = |m: String| RestoreError::Image(ImageError::Mismatch(m));
        let layout = &image.layout;
        if layout.memories.len() != self.memories.len() {
            return Err(mismatch(format!(
                "the image has {} linear memories, the instance {}",
                layout.memories.len(),
                self.memories.len()
            )));
        }
        let (globals,) = self.globals_get.call_async(&mut *store, ()).await?;
        if globals.len() != layout.globals.len() {
            return Err(mismatch(format!(
                "the image has {} mutable globals, the instance {}",
                layout.globals.len(),
                globals.len()
            )));
        }
        let mut offset = 0;
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
            // Zero what a fresh instance's data segments wrote where the image has zeros
            // (growth adds zeros), then write the pages that are not zero. Touching only those
            // pages matters: each first touch of a page costs a fault.
            let clear = match fresh.and_then(|f| f.runs.get(i)) {
                Some(nonzero) => without(nonzero, &saved.runs),
                None => vec![(0, (fresh_len / PAGE) as u32)],
            };
            for (start, pages) in clear {
                let (start, len) = (start as usize * PAGE, pages as usize * PAGE);
                let len = len.min(fresh_len.saturating_sub(start));
                if len > 0 {
                    memory
                        .zero
                        .call_async(&mut *store, (start as u32, len as u32))
                        .await?;
                }
            }
            for &(start, pages) in &saved.runs {
                let (start, run) = (start as usize * PAGE, pages as usize * PAGE);
                let bytes = &image.payload[offset..offset + run];
                for (n, chunk) in bytes.chunks(CHUNK).enumerate() {
                    let at = (start + n * CHUNK) as u32;
                    memory
                        .write
                        .call_async(&mut *store, (at, chunk.to_vec()))
                        .await?;
                }
                offset += run;
            }
        }
        // Last: the globals may say where the state the memories hold is.
        self.globals_set
            .call_async(&mut *store, (layout.globals.clone(),))
            .await?;
        Ok(())
    }
}

/// The pages of a fresh instance's memories that are not zero, as runs `(first page, pages)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Fresh {
    runs: Vec<Vec<(u32, u32)>>,
}

/// The pages of `runs` that are not in `minus` (both sorted runs of pages), as runs.
fn without(runs: &[(u32, u32)], minus: &[(u32, u32)]) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut other = minus.iter().peekable();
    for &(start, len) in runs {
        let (mut at, end) = (start, start + len);
        while at < end {
            // Skip the runs of `minus` that end before `at`.
            while other.peek().is_some_and(|&&(s, l)| s + l <= at) {
                other.next();
            }
            match other.peek() {
                Some(&&(s, l)) if s <= at => at = (s + l).min(end),
                Some(&&(s, _)) if s < end => {
                    out.push((at, s - at));
                    at = s;
                }
                _ => {
                    out.push((at, end - at));
                    at = end;
                }
            }
        }
    }
    out
}

/// An image of `globals` and `memories`: zero pages left out, the rest compressed.
pub(crate) fn encode(globals: &[u64], memories: &[Vec<u8>]) -> Vec<u8> {
    let mut layout = Layout {
        format: FORMAT,
        globals: globals.to_vec(),
        memories: Vec::with_capacity(memories.len()),
        raw_len: 0,
    };
    let mut payload = Vec::new();
    for bytes in memories {
        let mut runs: Vec<(u32, u32)> = Vec::new();
        for (index, page) in bytes.chunks(PAGE).enumerate() {
            if is_zero(page) {
                continue;
            }
            payload.extend_from_slice(page);
            let index = index as u32;
            match runs.last_mut() {
                Some((start, len)) if *start + *len == index => *len += 1,
                _ => runs.push((index, 1)),
            }
        }
        layout.memories.push(MemoryLayout {
            size: bytes.len() as u64,
            runs,
        });
    }
    layout.raw_len = payload.len() as u64;
    let mut image = postcard::to_stdvec(&layout).expect("a layout always serialises");
    image.extend_from_slice(&lz4_flex::block::compress(&payload));
    image
}

/// The globals and memories of an image: the memories' sizes and runs of non-zero pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Layout {
    format: u8,
    /// Every captured global, in the accessor's order.
    globals: Vec<u64>,
    memories: Vec<MemoryLayout>,
    /// Bytes of the uncompressed payload.
    raw_len: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct MemoryLayout {
    size: u64,
    /// `(first page, number of pages)` of each run of pages that are not all zero.
    runs: Vec<(u32, u32)>,
}

/// An image, checked and decompressed, ready to write back.
#[derive(Debug, Clone)]
pub(crate) struct DecodedImage {
    layout: Layout,
    payload: Vec<u8>,
}

impl DecodedImage {
    /// Check and decompress an image.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, ImageError> {
        let decode = |m: String| ImageError::Decode(m);
        let (layout, compressed): (Layout, _) =
            postcard::take_from_bytes(bytes).map_err(|e| decode(e.to_string()))?;
        if layout.format != FORMAT {
            return Err(decode(format!(
                "image format {} (this host reads {FORMAT})",
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
        let payload = lz4_flex::block::decompress(compressed, layout.raw_len as usize)
            .map_err(|e| decode(format!("the pages do not decompress: {e}")))?;
        if payload.len() as u64 != layout.raw_len {
            return Err(decode("the pages decompress to the wrong length".into()));
        }
        Ok(Self { layout, payload })
    }

    /// Memory `m` as it was imaged.
    #[cfg(test)]
    fn memory(&self, m: usize) -> Vec<u8> {
        let offset: usize = self.layout.memories[..m]
            .iter()
            .flat_map(|l| &l.runs)
            .map(|&(_, len)| len as usize * PAGE)
            .sum();
        let layout = &self.layout.memories[m];
        let mut bytes = vec![0; layout.size as usize];
        let mut at = offset;
        for &(start, len) in &layout.runs {
            let (start, len) = (start as usize * PAGE, len as usize * PAGE);
            bytes[start..start + len].copy_from_slice(&self.payload[at..at + len]);
            at += len;
        }
        bytes
    }
}

fn is_zero(page: &[u8]) -> bool {
    // A comparison with a page of zeros is a `memcmp`, which libc vectorises.
    static ZEROS: [u8; PAGE] = [0; PAGE];
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

    #[test]
    fn an_image_keeps_every_byte_and_global_and_drops_zero_pages() {
        let size = 64 * 1024;
        let memories = [
            memory_with(&[(0, 1), (5000, 2), (65535, 3)], size),
            vec![0; 2 * size],
        ];
        let image = encode(&[7, u64::MAX], &memories);
        assert!(
            image.len() < 3 * PAGE,
            "zero pages are left out: {}",
            image.len()
        );
        let decoded = DecodedImage::decode(&image).unwrap();
        assert_eq!(decoded.layout.globals, [7, u64::MAX]);
        assert_eq!(decoded.memory(0), memories[0]);
        assert_eq!(decoded.memory(1), memories[1]);
    }

    #[test]
    fn the_pages_to_clear_are_the_fresh_ones_the_image_has_not() {
        assert_eq!(
            without(&[(0, 10)], &[(2, 3), (7, 1)]),
            [(0, 2), (5, 2), (8, 2)]
        );
        assert_eq!(without(&[(0, 2), (5, 5)], &[(0, 6)]), [(6, 4)]);
        assert_eq!(without(&[(3, 2)], &[]), [(3, 2)]);
        assert_eq!(without(&[(3, 2)], &[(0, 100)]), []);
    }

    #[test]
    fn damaged_images_are_refused_not_trusted() {
        let image = encode(&[1, 2], &[memory_with(&[(0, 1), (9000, 2)], 64 * 1024)]);
        for cut in 0..image.len() {
            assert!(
                DecodedImage::decode(&image[..cut]).is_err(),
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
            match DecodedImage::decode(&bad) {
                Err(_) => refused += 1,
                Ok(decoded) => {
                    for m in 0..decoded.layout.memories.len() {
                        assert_eq!(
                            decoded.memory(m).len() as u64,
                            decoded.layout.memories[m].size
                        );
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

    #[tokio::test]
    async fn a_restored_instance_carries_on_as_the_original_does() {
        let engine = Engine::new(&Config::new()).unwrap();
        let bytes = super::super::instrument::instrument(&wat::parse_str(COUNTER).unwrap())
            .unwrap()
            .bytes;
        let component = Component::new(&engine, &bytes).unwrap();
        let linker = Linker::<()>::new(&engine);
        let fresh = || async {
            let mut store = Store::new(&engine, ());
            let instance = linker
                .instantiate_async(&mut store, &component)
                .await
                .unwrap();
            let bump = instance
                .get_typed_func::<(), (u32,)>(&mut store, "bump")
                .unwrap();
            let accessor = Accessor::find(&mut store, &instance).unwrap().unwrap();
            (store, bump, accessor)
        };
        let (mut store, bump, accessor) = fresh().await;
        for _ in 0..3 {
            bump.call_async(&mut store, ()).await.unwrap();
        }
        let image = accessor.capture(&mut store).await.unwrap();

        let (mut other, other_bump, other_accessor) = fresh().await;
        let decoded = DecodedImage::decode(&image).unwrap();
        let nonzero = other_accessor.fresh(&mut other).await.unwrap();
        other_accessor
            .restore(&mut other, &decoded, Some(&nonzero))
            .await
            .unwrap();
        assert_eq!(other_accessor.capture(&mut other).await.unwrap(), image);
        for _ in 0..2 {
            let theirs = bump.call_async(&mut store, ()).await.unwrap();
            let ours = other_bump.call_async(&mut other, ()).await.unwrap();
            assert_eq!(ours, theirs);
        }

        // An image of other memories is refused.
        let (mut third, _, third_accessor) = fresh().await;
        let two = DecodedImage::decode(&encode(&[0], &[vec![0; 65536], vec![0; 65536]])).unwrap();
        assert!(matches!(
            third_accessor.restore(&mut third, &two, None).await,
            Err(RestoreError::Image(ImageError::Mismatch(_)))
        ));
        let globals = DecodedImage::decode(&encode(&[0, 0], &[vec![0; 65536 * 2]])).unwrap();
        assert!(matches!(
            third_accessor.restore(&mut third, &globals, None).await,
            Err(RestoreError::Image(ImageError::Mismatch(_)))
        ));
    }
}
