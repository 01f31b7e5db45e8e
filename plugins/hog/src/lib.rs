//! `hog`: a test plugin whose step allocates memory without bound.
use damson_guest::prelude::*;

#[derive(Default)]
struct Hog {
    hoard: Vec<Vec<u8>>,
}

impl Process for Hog {
    fn define(spec: &mut Spec<Self>) {
        spec.outline([step("hoard", Self::hoard)]);
    }
}

impl Hog {
    fn hoard(&mut self, _: &mut Ctx) -> Step {
        loop {
            // Touch every MiB so it is really used, and keep it.
            let chunk = vec![0xA5u8; 1 << 20];
            self.hoard.push(std::hint::black_box(chunk));
        }
    }
}

damson_guest::export!(Hog);
