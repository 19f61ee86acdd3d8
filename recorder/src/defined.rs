//! The id of an annotation object (a variable, a channel) in the current session, defined on
//! first use: the same scheme as the wrapper locks' `LockMeta`.

use crate::format::SiteId;
use crate::local::{self, Ctx};
use crate::registry::{Entity, Registry};
use crate::session;
use std::panic::Location;
use std::sync::atomic::{AtomicU64, Ordering};

/// `generation << 32 | id` of an object in the session that last saw it; 0 before any.
///
/// Generations start at 1, so the initial 0 never matches an active session.
#[derive(Debug, Default)]
pub(crate) struct Defined(AtomicU64);

impl Defined {
    /// Not defined in any session yet.
    pub(crate) const fn new() -> Defined {
        Defined(AtomicU64::new(0))
    }

    /// The object's id in the current session; `define` (given the registry and the id of
    /// `created`, the object's creation site) defines it on first use in the session.
    #[inline]
    pub(crate) fn get(
        &self,
        ctx: &mut Ctx<'_>,
        created: &'static Location<'static>,
        define: impl FnOnce(&mut Registry, SiteId) -> u32,
    ) -> u32 {
        let generation = ctx.session().generation() & u64::from(u32::MAX);
        let packed = self.0.load(Ordering::Acquire);
        if packed >> 32 == generation {
            return packed as u32;
        }
        self.define(ctx, generation, created, define)
    }

    /// The object is gone: the session that defined it (as `entity(id)`) may forget it.
    pub(crate) fn retire(&mut self, entity: impl FnOnce(u32) -> Entity) {
        let packed = *self.0.get_mut();
        if packed != 0 {
            local::retire_entity(packed >> 32, entity(packed as u32));
        }
    }

    #[cold]
    fn define(
        &self,
        ctx: &mut Ctx<'_>,
        generation: u64,
        created: &'static Location<'static>,
        define: impl FnOnce(&mut Registry, SiteId) -> u32,
    ) -> u32 {
        let site = ctx.site(created);
        let mut registry = session::lock(&ctx.session().registry);
        // Another thread may have defined it while this one waited for the registry.
        let packed = self.0.load(Ordering::Acquire);
        if packed >> 32 == generation {
            return packed as u32;
        }
        let id = define(&mut registry, site);
        self.0.store(generation << 32 | u64::from(id), Ordering::Release);
        id
    }
}
