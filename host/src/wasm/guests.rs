//! [`Guests`]: the [`Guest`] behind one process — its plugin's instance, and instances of the
//! plugins whose exposed ports it validates or computes defaults for.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{DecodedImage, Instance, Plugin, Runtime};
use crate::guest::{Failure, Guest, Outcome, ProcessView, StepOutcome};
use crate::ports::{DefaultRequest, GuestCheck, Origin};

/// The instances a process runs on.
pub(crate) struct Guests {
    pub(super) runtime: Runtime,
    pub(super) plugin: Arc<Plugin>,
    /// Its plugin's instance: `None` only while [`reset`](Guest::reset) makes another.
    pub(super) own: Option<Instance>,
    /// Instances of exposed plugins, by name, made when first needed.
    pub(super) others: HashMap<String, Instance>,
    /// Whether [`image`](Guest::image) takes memory images (the host's setting and the plugin's
    /// snapshot safety).
    pub(super) images: bool,
}

impl Guests {
    fn own(&mut self) -> Result<&mut Instance, Failure> {
        self.own
            .as_mut()
            .ok_or_else(|| Failure::Restore("the plugin's instance could not be made again".into()))
    }

    /// The instance that owns a port of this origin, and the port's path there.
    async fn owner<'p>(
        &mut self,
        path: &'p str,
        origin: Option<&'p Origin>,
    ) -> Result<(&mut Instance, &'p str), Failure> {
        let Some(origin) = origin else {
            return Ok((self.own()?, path));
        };
        if !self.others.contains_key(&origin.plugin) {
            let interrupt = self.own()?.interrupt();
            let plugin = self.plugin.exposed(&origin.plugin).ok_or_else(|| {
                Failure::Error(format!(
                    "the exposed plugin '{}' is not loaded",
                    origin.plugin
                ))
            })?;
            let instance = self.runtime.instance(plugin, interrupt, None).await?;
            self.others.insert(origin.plugin.clone(), instance);
        }
        let instance = self.others.get_mut(&origin.plugin).expect("inserted above");
        Ok((instance, origin.path.as_str()))
    }
}

#[async_trait]
impl Guest for Guests {
    async fn run_step(&mut self, name: &str, process: &mut ProcessView) -> StepOutcome {
        match self.own() {
            Ok(own) => own.run_step(name, process).await,
            Err(failure) => Outcome::failed(failure),
        }
    }

    async fn check_condition(&mut self, name: &str, process: &mut ProcessView) -> Outcome<bool> {
        match self.own() {
            Ok(own) => own.check_condition(name, process).await,
            Err(failure) => Outcome::failed(failure),
        }
    }

    async fn validate(&mut self, check: &GuestCheck) -> Result<Option<String>, Failure> {
        let (instance, path) = self.owner(&check.path, check.origin.as_ref()).await?;
        instance.validate(path, &check.value).await
    }

    async fn compute_default(&mut self, request: &DefaultRequest) -> Result<Value, Failure> {
        let (instance, path) = self.owner(&request.path, request.origin.as_ref()).await?;
        instance.compute_default(path).await
    }

    async fn image(&mut self) -> Option<Vec<u8>> {
        if !self.images {
            return None;
        }
        self.own.as_mut()?.image().await
    }

    async fn reset(&mut self, image: Option<Vec<u8>>) -> Result<(), Failure> {
        let image = match image {
            Some(bytes) if self.images => {
                Some(DecodedImage::decode(bytes).map_err(|e| Failure::Restore(e.to_string()))?)
            }
            _ => None,
        };
        let interrupt = self.own()?.interrupt();
        // The old instance goes first, giving its slot of the instance pool to the new one.
        self.own = None;
        self.others.clear();
        let fresh = self
            .runtime
            .instance(&self.plugin, interrupt, image.as_ref())
            .await?;
        self.own = Some(fresh);
        Ok(())
    }
}
