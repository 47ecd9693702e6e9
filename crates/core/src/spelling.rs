//! Enums spelled as words, each word written once: in settings files, on the command line, in
//! JSON and in logs. [`spelled!`](crate::spelled) gives an enum its words, `Display`, `FromStr`
//! and the list of all its values.

/// A word that is none of an enum's spellings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{found}` is not a {what}; expected one of: {}", expected.join(", "))]
pub struct UnknownWord {
    /// What was expected, in words ("sync direction").
    pub what: &'static str,
    /// The word found.
    pub found: String,
    /// Every word that would do.
    pub expected: Vec<&'static str>,
}

/// Spells the variants of a unit enum: `ALL`, `as_str`, `Display` and `FromStr` (whose error,
/// [`UnknownWord`], lists the choices).
///
/// ```
/// #[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// pub enum Speed { Slow, Fast }
/// ferry_core::spelled!(pub Speed, "speed", { Slow = "slow", Fast = "fast" });
/// assert_eq!("fast".parse::<Speed>(), Ok(Speed::Fast));
/// assert_eq!(Speed::Slow.to_string(), "slow");
/// assert!("warp".parse::<Speed>().unwrap_err().to_string().contains("slow, fast"));
/// ```
#[macro_export]
macro_rules! spelled {
    ($vis:vis $name:ident, $what:literal, { $($variant:ident = $text:literal),+ $(,)? }) => {
        impl $name {
            /// Every value, in the order spelled.
            $vis const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The value's word.
            $vis fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $crate::spelling::UnknownWord;

            fn from_str(word: &str) -> Result<Self, Self::Err> {
                $name::ALL
                    .iter()
                    .copied()
                    .find(|value| value.as_str() == word)
                    .ok_or_else(|| $crate::spelling::UnknownWord {
                        what: $what,
                        found: word.to_owned(),
                        expected: $name::ALL.iter().map(|value| value.as_str()).collect(),
                    })
            }
        }
    };
}
