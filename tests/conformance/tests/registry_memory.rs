//! The registry suite against the in-memory registry.

use std::sync::Arc;

use async_trait::async_trait;
use rmicro::registry::SharedRegistry;
use rmicro::registry::memory::MemoryRegistry;
use rmicro_conformance::registry::RegistryFixture;

#[derive(Default)]
struct Memory(MemoryRegistry);

#[async_trait]
impl RegistryFixture for Memory {
    async fn registry(&self) -> SharedRegistry {
        Arc::new(self.0.clone())
    }
}

rmicro_conformance::registry_suite!(Memory::default());
