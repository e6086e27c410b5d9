//! States and kinds kept as text (in a column, a JSON answer, an audit record): each is an
//! enum whose variants name their text once, parsed back with an error for any other text.

/// Text that names none of a vocabulary's values: which vocabulary, and the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownName {
    pub what: &'static str,
    pub value: String,
}

/// Defines an enum over a closed set of names: `ALL`, `as_str`, `parse` (an
/// [`UnknownName`] for any other text), `FromStr`, `Display`, and (de)serialization as the
/// name, so that its serialized form is the text it replaces.
macro_rules! named_enum {
    (
        $(#[$meta:meta])*
        $vis:vis enum $name:ident ($what:literal) {
            $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
        #[serde(into = "&'static str")]
        $vis enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value's name, as stored and answered.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// The value named `s`.
            pub fn parse(s: &str) -> Result<Self, $crate::domain::names::UnknownName> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::names::UnknownName {
                        what: $what,
                        value: s.to_owned(),
                    }),
                }
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::names::UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl From<$name> for &'static str {
            fn from(value: $name) -> Self {
                value.as_str()
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                $name::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use named_enum;
