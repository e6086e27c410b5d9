//! The eSIM installation view: the activation code as a printable QR code and as the one-tap
//! installation links of Android and iOS. Pure functions of the code.

use qrcode::{EcLevel, QrCode};

const ANDROID: &str = "https://esimsetup.android.com/esim_qrcode_provisioning?carddata=";
const IOS: &str = "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata=";

/// The code percent-encoded for a query value (`$` → `%24`, `:` → `%3A`, …).
fn encoded(code: &str) -> String {
    form_urlencoded::byte_serialize(code.as_bytes()).collect()
}

pub fn android_link(code: &str) -> String {
    format!("{ANDROID}{}", encoded(code))
}

pub fn ios_link(code: &str) -> String {
    format!("{IOS}{}", encoded(code))
}

/// An inline `<svg>` QR code whose payload is exactly `code`: error correction level Q
/// (25 %, survives print wear and smudges), the standard 4-module quiet zone, at least
/// 256 px. `None` if the code cannot be encoded (it always can: codes are short ASCII).
pub fn qr_svg(code: &str) -> Option<String> {
    let qr = QrCode::with_error_correction_level(code.as_bytes(), EcLevel::Q).ok()?;
    let svg = qr
        .render::<qrcode::render::svg::Color<'_>>()
        .quiet_zone(true)
        .min_dimensions(256, 256)
        .build();
    // Inline: without the XML declaration.
    Some(match svg.find("<svg") {
        Some(at) => svg[at..].to_owned(),
        None => svg,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_percent_encode_the_code() {
        let code = "LPA:1$smdp.example.com$ABC-123";
        assert_eq!(
            android_link(code),
            "https://esimsetup.android.com/esim_qrcode_provisioning?carddata=LPA%3A1%24smdp.example.com%24ABC-123"
        );
        assert_eq!(
            ios_link(code),
            "https://esimsetup.apple.com/esim_qrcode_provisioning?carddata=LPA%3A1%24smdp.example.com%24ABC-123"
        );
    }

    #[test]
    fn the_qr_code_is_an_inline_svg() {
        let svg = qr_svg("LPA:1$smdp.example.com$ABC-123").unwrap();
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
