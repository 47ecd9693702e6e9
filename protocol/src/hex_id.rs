//! Fixed-size ids written as lowercase hex: [`hex_id!`](crate::hex_id) gives a newtype over a
//! byte array its `Display`, `Debug` and `FromStr`, the same way for every id in Ferry.

/// Parses exactly `2 * N` lowercase hex digits.
pub fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// Gives `$name(pub [u8; $len])` its lowercase hex `Display`, a `Debug` that names the type,
/// and a `FromStr` that takes exactly the `Display` form (anything else is
/// [`Error::BadName`](crate::Error::BadName), quoting at most 100 characters of the input).
///
/// ```
/// #[derive(Clone, Copy, PartialEq, Eq)]
/// pub struct Token(pub [u8; 2]);
/// ferry_protocol::hex_id!(Token, 2);
/// assert_eq!(Token([0xab, 0x01]).to_string(), "ab01");
/// assert_eq!("ab01".parse::<Token>().ok(), Some(Token([0xab, 0x01])));
/// assert!("AB01".parse::<Token>().is_err());
/// ```
#[macro_export]
macro_rules! hex_id {
    ($name:ident, $len:expr) => {
        impl ::core::fmt::Display for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                for byte in self.0 {
                    write!(f, "{byte:02x}")?;
                }
                Ok(())
            }
        }

        impl ::core::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::core::fmt::Formatter<'_>) -> ::core::fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl $name {
            /// The first 8 hex digits: how people are shown an id in running text.
            pub fn short(&self) -> ::std::string::String {
                use ::core::fmt::Write as _;
                let mut short = ::std::string::String::with_capacity(8);
                for byte in &self.0[..4] {
                    let _ = write!(short, "{byte:02x}");
                }
                short
            }
        }

        impl ::core::str::FromStr for $name {
            type Err = $crate::Error;

            fn from_str(text: &str) -> Result<Self, $crate::Error> {
                $crate::hex_id::parse_hex::<$len>(text)
                    .map($name)
                    .ok_or_else(|| $crate::Error::BadName {
                        name: text.chars().take(100).collect(),
                        reason: concat!("expected ", stringify!($len), " bytes as lowercase hex"),
                    })
            }
        }
    };
}
