//! Memory images: a copy of every linear memory of a plugin instance, taken between two calls
//! and written back into a fresh instance of the same component.
//!
//! Wasmtime gives an embedder no handle on a component's inner memories, so the host allocates
//! them itself: [`HostMemory`] is installed with `Config::with_host_memory`, and every store
//! has a [`Memories`] list of the memories made for it. Wasmtime does not say which store a
//! memory is for, so instantiation runs inside [`Memories::scope`], which names the store's
//! list in a thread-local for the duration of each poll: memories are created synchronously
//! within one poll of the instantiation, on the polling thread, so no other store's
//! instantiation can interleave.
//!
//! An image is taken only at a quiescent point (no guest call running) and is valid only for the
//! exact component it came from (addresses are baked into it). Globals are not copied: a
//! snapshot-safe component has only the stack pointer as a mutable global, and between calls it
//! is back at its initial value (see [`super::safety`]).
//!
//! Format: postcard [`Layout`] (each memory's size and the runs of 4 KiB pages that are not all
//! zero), then the non-zero pages, LZ4-compressed (`lz4_flex` block format).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use rustix::mm::{Advice, MapFlags, MprotectFlags, ProtFlags};
use serde::{Deserialize, Serialize};
use wasmtime::{LinearMemory, MemoryCreator, MemoryType};

/// The unit of zero-page elision: the host's page size.
const PAGE: usize = 4096;
/// The image format version.
const FORMAT: u8 = 1;
/// Reservation when wasmtime leaves the choice to us (it normally passes its own).
const DEFAULT_RESERVATION: usize = 4 << 30;

/// Why an image cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImageError {
    #[error("the memory image cannot be decoded: {0}")]
    /// The bytes are not an image.
    Decode(String),
    #[error("the memory image does not fit this instance: {0}")]
    /// The image is of other memories than this instance's.
    Mismatch(String),
}

/// One host-allocated linear memory: a reservation of `capacity` bytes plus a guard, of which
/// the first `size` bytes are readable and writable.
struct Region {
    base: *mut u8,
    mapped: usize,
    capacity: usize,
    size: AtomicUsize,
}

// SAFETY: the region is a plain mapping; wasmtime serialises access to a store's memories, and
// the host reads or writes one only between guest calls, holding the store exclusively.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    fn new(size: usize, capacity: usize, guard: usize) -> Result<Self, String> {
        let capacity = capacity.max(size).next_multiple_of(PAGE);
        let mapped = capacity
            .checked_add(guard)
            .ok_or("the memory reservation overflows")?;
        // SAFETY: a fresh private anonymous mapping, not yet accessible.
        let base = unsafe {
            rustix::mm::mmap_anonymous(
                std::ptr::null_mut(),
                mapped,
                ProtFlags::empty(),
                MapFlags::PRIVATE | MapFlags::NORESERVE,
            )
        }
        .map_err(|e| format!("cannot reserve {mapped} bytes for a linear memory: {e}"))?;
        let region = Region {
            base: base.cast(),
            mapped,
            capacity,
            size: AtomicUsize::new(0),
        };
        region.grow(size)?;
        Ok(region)
    }

    fn size(&self) -> usize {
        self.size.load(Ordering::Acquire)
    }

    /// Make the first `new_size` bytes accessible (never shrinks).
    fn grow(&self, new_size: usize) -> Result<(), String> {
        let old = self.size();
        if new_size > self.capacity {
            return Err(format!(
                "cannot grow a linear memory to {new_size} bytes: {} are reserved",
                self.capacity
            ));
        }
        if new_size > old {
            let from = old.next_multiple_of(PAGE).min(self.capacity);
            let to = new_size.next_multiple_of(PAGE);
            if to > from {
                // SAFETY: within our own mapping.
                unsafe {
                    rustix::mm::mprotect(
                        self.base.add(from).cast(),
                        to - from,
                        MprotectFlags::READ | MprotectFlags::WRITE,
                    )
                }
                .map_err(|e| format!("cannot grow a linear memory: {e}"))?;
            }
            self.size.store(new_size, Ordering::Release);
        }
        Ok(())
    }

    /// The accessible bytes.
    ///
    /// # Safety
    /// No guest call may run on the store meanwhile.
    unsafe fn bytes(&self) -> &[u8] {
        unsafe { std::slice::from_raw_parts(self.base, self.size()) }
    }

    /// # Safety
    /// As [`bytes`](Self::bytes).
    #[allow(clippy::mut_from_ref)]
    unsafe fn bytes_mut(&self) -> &mut [u8] {
        unsafe { std::slice::from_raw_parts_mut(self.base, self.size()) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: our mapping; nothing refers to it once the last owner is gone.
        if let Err(e) = unsafe { rustix::mm::munmap(self.base.cast(), self.mapped) } {
            tracing::error!("cannot unmap a linear memory: {e}");
        }
    }
}

/// What wasmtime holds: a handle on the region, which the store's [`Memories`] shares.
struct HostLinearMemory(Arc<Region>);

// SAFETY: the base never moves (growth stays within the reservation), memory starts zeroed,
// and the guard after the reservation stays inaccessible.
unsafe impl LinearMemory for HostLinearMemory {
    fn byte_size(&self) -> usize {
        self.0.size()
    }

    fn byte_capacity(&self) -> usize {
        self.0.capacity
    }

    fn grow_to(&mut self, new_size: usize) -> wasmtime::Result<()> {
        self.0.grow(new_size).map_err(wasmtime::Error::msg)
    }

    fn as_ptr(&self) -> *mut u8 {
        self.0.base
    }
}

/// Allocates every linear memory of the engine, and records it in the [`Memories`] of the
/// store being instantiated (if any).
pub(crate) struct HostMemory;

// SAFETY: see `HostLinearMemory`.
unsafe impl MemoryCreator for HostMemory {
    fn new_memory(
        &self,
        _ty: MemoryType,
        minimum: usize,
        maximum: Option<usize>,
        reserved_size_in_bytes: Option<usize>,
        guard_size_in_bytes: usize,
    ) -> Result<Box<dyn LinearMemory>, String> {
        let memories = CURRENT.with(|c| c.borrow().clone());
        let size = memories
            .as_ref()
            .and_then(|m| m.next_size())
            .map_or(minimum, |s| s.max(minimum));
        if let Some(maximum) = maximum
            && size > maximum
        {
            return Err(format!(
                "a memory image needs {size} bytes, above the memory's maximum of {maximum}"
            ));
        }
        let capacity = reserved_size_in_bytes.unwrap_or(DEFAULT_RESERVATION);
        let region = Arc::new(Region::new(size, capacity, guard_size_in_bytes)?);
        if let Some(memories) = memories {
            memories
                .regions
                .lock()
                .expect("memories")
                .push(region.clone());
        }
        Ok(Box::new(HostLinearMemory(region)))
    }
}

thread_local! {
    /// The memories of the store whose instantiation this thread is polling.
    static CURRENT: RefCell<Option<Arc<Memories>>> = const { RefCell::new(None) };
}

/// The linear memories of one store, in the order they were created (which is the same for
/// every instantiation of a component).
#[derive(Default)]
pub(crate) struct Memories {
    regions: Mutex<Vec<Arc<Region>>>,
    /// Sizes to give the next memories created, to restore an image into.
    presize: Mutex<VecDeque<usize>>,
}

impl Memories {
    /// Run `future` (an instantiation) with the memories it creates recorded here.
    pub(crate) fn scope<F: Future>(self: &Arc<Self>, future: F) -> Scoped<F> {
        Scoped {
            inner: Box::pin(future),
            memories: self.clone(),
        }
    }

    /// Create the next memories at these sizes (an image's), so that it can be written back.
    pub(crate) fn presize(&self, sizes: impl IntoIterator<Item = usize>) {
        self.presize.lock().expect("memories").extend(sizes);
    }

    fn next_size(&self) -> Option<usize> {
        self.presize.lock().expect("memories").pop_front()
    }

    /// Whether the store has memories this host allocated.
    pub(crate) fn is_empty(&self) -> bool {
        self.regions.lock().expect("memories").is_empty()
    }

    /// Take an image of every memory: zero pages left out, the rest compressed.
    ///
    /// Must be called between guest calls (the caller holds the store).
    pub(crate) fn capture(&self) -> Vec<u8> {
        let regions = self.regions.lock().expect("memories");
        let mut layout = Layout {
            format: FORMAT,
            memories: Vec::with_capacity(regions.len()),
            raw_len: 0,
        };
        let mut payload = Vec::new();
        for region in regions.iter() {
            // SAFETY: between guest calls.
            let bytes = unsafe { region.bytes() };
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

    /// Write `image` back into these memories, which were created at its sizes; returns the
    /// bytes of all memories together.
    ///
    /// Must be called between guest calls, before the first.
    pub(crate) fn restore(&self, image: &DecodedImage) -> Result<usize, ImageError> {
        let regions = self.regions.lock().expect("memories");
        if regions.len() != image.layout.memories.len() {
            return Err(ImageError::Mismatch(format!(
                "the image has {} linear memories, the instance {}",
                image.layout.memories.len(),
                regions.len()
            )));
        }
        let mut offset = 0;
        for (i, (region, memory)) in regions.iter().zip(&image.layout.memories).enumerate() {
            if region.size() as u64 != memory.size {
                return Err(ImageError::Mismatch(format!(
                    "memory {i} is {} bytes, its image {}",
                    region.size(),
                    memory.size
                )));
            }
            // Back to all zeros (data segments were written at instantiation): the kernel
            // drops the pages, and untouched ones cost nothing.
            // SAFETY: our own readable and writable mapping, between guest calls.
            unsafe {
                rustix::mm::madvise(
                    region.base.cast(),
                    region.size().next_multiple_of(PAGE),
                    Advice::LinuxDontNeed,
                )
            }
            .map_err(|e| ImageError::Mismatch(format!("cannot reset memory {i}: {e}")))?;
            // SAFETY: between guest calls.
            let bytes = unsafe { region.bytes_mut() };
            for &(start, len) in &memory.runs {
                let (start, len) = (start as usize * PAGE, len as usize * PAGE);
                bytes[start..start + len].copy_from_slice(&image.payload[offset..offset + len]);
                offset += len;
            }
        }
        Ok(regions.iter().map(|r| r.size()).sum())
    }
}

/// A future polled with its store's [`Memories`] named in the thread-local.
pub(crate) struct Scoped<F> {
    inner: Pin<Box<F>>,
    memories: Arc<Memories>,
}

impl<F: Future> Future for Scoped<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        struct Restore(Option<Arc<Memories>>);
        impl Drop for Restore {
            fn drop(&mut self) {
                let previous = self.0.take();
                CURRENT.with(|c| *c.borrow_mut() = previous);
            }
        }
        let this = self.get_mut();
        let _restore = Restore(CURRENT.with(|c| c.replace(Some(this.memories.clone()))));
        this.inner.as_mut().poll(cx)
    }
}

/// The memories of an image: their sizes and the runs of non-zero pages.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Layout {
    format: u8,
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
            if memory.size % PAGE as u64 != 0 {
                return Err(decode(format!(
                    "memory {i} is {} bytes, not a whole number of pages",
                    memory.size
                )));
            }
            let pages = memory.size.div_ceil(PAGE as u64);
            for &(start, len) in &memory.runs {
                if u64::from(start) + u64::from(len) > pages {
                    return Err(decode(format!(
                        "memory {i}: pages {start}..{} lie beyond its {} bytes",
                        u64::from(start) + u64::from(len),
                        memory.size
                    )));
                }
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

    /// The size of each memory, in creation order.
    pub(crate) fn sizes(&self) -> impl Iterator<Item = usize> + '_ {
        self.layout.memories.iter().map(|m| m.size as usize)
    }
}

fn is_zero(page: &[u8]) -> bool {
    // A comparison with a page of zeros is a `memcmp`, which libc vectorises.
    static ZEROS: [u8; PAGE] = [0; PAGE];
    page == &ZEROS[..page.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memories_with(contents: &[&[(usize, u8)]], size: usize) -> Arc<Memories> {
        let memories = Arc::new(Memories::default());
        for writes in contents {
            let region = Arc::new(Region::new(size, size * 4, PAGE).unwrap());
            let bytes = unsafe { region.bytes_mut() };
            for &(at, value) in *writes {
                bytes[at] = value;
            }
            memories.regions.lock().unwrap().push(region);
        }
        memories
    }

    #[test]
    fn an_image_keeps_every_byte_and_drops_zero_pages() {
        let size = 64 * 1024;
        let original = memories_with(&[&[(0, 1), (5000, 2), (65535, 3)], &[]], size);
        let image = original.capture();
        assert!(
            image.len() < 3 * PAGE,
            "zero pages are left out: {}",
            image.len()
        );

        let decoded = DecodedImage::decode(&image).unwrap();
        assert_eq!(decoded.sizes().collect::<Vec<_>>(), vec![size, size]);
        // A fresh instance has data-segment bytes where the image has zeros: they go.
        let fresh = memories_with(&[&[(100, 9)], &[(7, 7)]], size);
        assert_eq!(fresh.restore(&decoded).unwrap(), 2 * size);
        let regions = fresh.regions.lock().unwrap();
        let (a, b) = unsafe { (regions[0].bytes(), regions[1].bytes()) };
        assert_eq!((a[0], a[5000], a[65535], a[100]), (1, 2, 3, 0));
        assert!(b.iter().all(|&x| x == 0));
    }

    #[test]
    fn an_image_for_other_memories_is_refused() {
        let image = memories_with(&[&[(0, 1)]], 64 * 1024).capture();
        let decoded = DecodedImage::decode(&image).unwrap();
        let two = memories_with(&[&[], &[]], 64 * 1024);
        assert!(matches!(
            two.restore(&decoded),
            Err(ImageError::Mismatch(_))
        ));
        let smaller = memories_with(&[&[]], 128 * 1024);
        assert!(matches!(
            smaller.restore(&decoded),
            Err(ImageError::Mismatch(_))
        ));
    }

    #[test]
    fn damaged_images_are_refused_not_trusted() {
        let memories = memories_with(&[&[(0, 1), (9000, 2)]], 64 * 1024);
        let image = memories.capture();
        for cut in 0..image.len() {
            assert!(
                DecodedImage::decode(&image[..cut]).is_err(),
                "an image cut to {cut} of {} bytes is refused",
                image.len()
            );
        }
        // A flipped byte in the layout is refused; one in the pages may decode, but whatever
        // decodes is written back only into memories of the sizes it names, within them.
        let mut refused = 0;
        for i in 0..image.len() {
            let mut bad = image.clone();
            bad[i] ^= 0xff;
            let Ok(decoded) = DecodedImage::decode(&bad) else {
                refused += 1;
                continue;
            };
            let fresh = memories_with(&[&[]], 64 * 1024);
            match fresh.restore(&decoded) {
                Ok(total) => assert_eq!(total, 64 * 1024, "flip at {i}"),
                Err(ImageError::Mismatch(_)) => {}
                Err(e) => panic!("flip at {i}: {e}"),
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
}
