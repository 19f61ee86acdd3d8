//! Typed identities. Every entity of a trace (string, site, thread, task, lock, variable,
//! channel) is a small integer defined once by a [`Definition`](super::Definition) and referred
//! to by id afterwards, so that events stay a few bytes long.
//!
//! Bump [`FORMAT_VERSION`](super::FORMAT_VERSION) if you change the serialized shape of these.

use serde::{Deserialize, Serialize};

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        pub struct $name(pub u32);

        impl $name {
            /// The id as an index, for tables kept by readers.
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                write!(f, "{}#{}", stringify!($name), self.0)
            }
        }
    };
}

typed_id!(
    /// An interned string (a name, a file path, a mark label).
    StringId
);
typed_id!(
    /// A source location: file, line, column and, where known, the function.
    SiteId
);
typed_id!(
    /// An OS thread of the recorded process.
    ThreadId
);
typed_id!(
    /// An async task (a tokio task or one spawned through the recorder's helpers).
    TaskId
);
typed_id!(
    /// A lock instance (mutex, rwlock, semaphore or a user-defined lock).
    LockId
);
typed_id!(
    /// An annotated shared variable, or a synchronisation object used by release/acquire
    /// annotations.
    VarId
);
typed_id!(
    /// A channel whose sends and receives are recorded.
    ChannelId
);
