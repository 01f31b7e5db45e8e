//! [`Guests`]: the [`Guest`] behind one process — its plugin's instance, and instances of the
//! plugins whose exposed ports it validates or computes defaults for.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::Value;

use super::{Instance, Plugin, Runtime};
use crate::guest::{Failure, Guest, Outcome, ProcessView, StepOutcome};
use crate::ports::{DefaultRequest, GuestCheck, Origin};

/// The instances a process runs on.
pub(crate) struct Guests {
    pub(super) runtime: Runtime,
    pub(super) plugin: Arc<Plugin>,
    pub(super) own: Instance,
    /// Instances of exposed plugins, by name, made when first needed.
    pub(super) others: HashMap<String, Instance>,
    /// Whether [`image`](Guest::image) takes memory images (the host's setting and the plugin's
    /// snapshot safety).
    pub(super) images: bool,
}

impl Guests {
    /// The instance that owns a port of this origin, and the port's path there.
    async fn owner<'p>(
        &mut self,
        path: &'p str,
        origin: Option<&'p Origin>,
    ) -> Result<(&mut Instance, &'p str), Failure> {
        let Some(origin) = origin else {
            return Ok((&mut self.own, path));
        };
        if !self.others.contains_key(&origin.plugin) {
            let plugin = self.plugin.exposed(&origin.plugin).ok_or_else(|| {
                Failure::Error(format!(
                    "the exposed plugin '{}' is not loaded",
                    origin.plugin
                ))
            })?;
            let instance = self
                .runtime
                .instance(plugin, self.own.interrupt(), None)
                .await?;
            self.others.insert(origin.plugin.clone(), instance);
        }
        let instance = self.others.get_mut(&origin.plugin).expect("inserted above");
        Ok((instance, origin.path.as_str()))
    }
}

#[async_trait]
impl Guest for Guests {
    async fn run_step(&mut self, name: &str, process: &mut ProcessView) -> StepOutcome {
        self.own.run_step(name, process).await
    }

    async fn check_condition(&mut self, name: &str, process: &mut ProcessView) -> Outcome<bool> {
        self.own.check_condition(name, process).await
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
        self.own.image().await
    }
}
