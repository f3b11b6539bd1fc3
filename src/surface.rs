//! The static description of an exposed type: its name, doc text and members, as the
//! `#[expose]` macro writes them. The policy gate and introspection read nothing else, so
//! this module depends on nothing in the crate.

/// The static description of an exposed type.
#[derive(Debug)]
pub struct TypeInfo {
    /// The type's name, as shown by `dir`/`help` and in traces.
    pub name: &'static str,
    /// The doc comment on the `impl` block (may be empty).
    pub doc: &'static str,
    /// The exposed members, in source order.
    pub members: &'static [MemberInfo],
    /// The member run when the object itself is called (callbacks); `None` when the object is
    /// not callable.
    pub call: Option<usize>,
}

impl TypeInfo {
    /// The index of the exposed member called `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.members.iter().position(|m| m.name == name)
    }
}

/// One exposed member.
#[derive(Debug)]
pub struct MemberInfo {
    /// The member's name.
    pub name: &'static str,
    /// Method or property.
    pub kind: MemberKind,
    /// A readable signature: `open(path: String, mode: String) -> File` or `value: i64`.
    pub signature: &'static str,
    /// The member's doc comment (may be empty).
    pub doc: &'static str,
}

/// What sort of member an exposed member is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberKind {
    /// A method: can be called, cannot be read or set.
    Method,
    /// A property: can be read; can be set only when `settable`.
    Property {
        /// True when the property has an exposed setter.
        settable: bool,
    },
}

/// An object's (or a method's) exposed surface as data, as
/// [`Proxy::describe`](crate::Proxy::describe) gives it from wherever the object lives: what
/// `help` shows as text, and what a wire that builds proxy classes needs (RPyC's `INSPECT`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct Description {
    /// The type's name; `method` for a method.
    pub type_name: String,
    /// The type's (or method's) doc text, empty when it has none.
    pub doc: String,
    /// True when the object itself can be called (a callback, a method).
    pub callable: bool,
    /// The exposed members, in source order (none for a method).
    pub members: Vec<MemberDescription>,
}

/// One exposed member in a [`Description`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub struct MemberDescription {
    /// The member's name.
    pub name: String,
    /// What it is.
    pub kind: DescribedKind,
    /// Its doc text, empty when it has none.
    pub doc: String,
}

/// A member's kind in a [`Description`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DescribedKind {
    /// A method: call it.
    Method,
    /// A read-only property.
    Property,
    /// A property with an exposed setter.
    Settable,
}

/// The type of the objects behind lent streams (`stream::Source`), set when the first stream
/// is made: the engine refuses to send one to a peer whose hello does not announce streams.
static STREAM_SOURCE: std::sync::OnceLock<&'static TypeInfo> = std::sync::OnceLock::new();

/// Records `info` as the type behind lent streams.
pub(crate) fn set_stream_source(info: &'static TypeInfo) {
    let _ = STREAM_SOURCE.set(info);
}

/// True when `info` is the type behind lent streams.
#[inline]
pub(crate) fn is_stream_source(info: &'static TypeInfo) -> bool {
    STREAM_SOURCE.get().is_some_and(|s| std::ptr::eq(*s, info))
}
