//! `simvault milenage`: the offline Milenage calculator.

use anyhow::bail;
use clap::Args;
use zeroize::Zeroizing;

#[derive(Args)]
pub struct MilenageArgs {
    /// K, 32 hex digits.
    #[arg(long)]
    pub k: String,
    /// OPc, 32 hex digits.
    #[arg(long, required_unless_present = "op", conflicts_with = "op")]
    pub opc: Option<String>,
    /// OP, 32 hex digits (OPc is derived from it).
    #[arg(long)]
    pub op: Option<String>,
    /// RAND, 32 hex digits.
    #[arg(long)]
    pub rand: String,
    /// SQN, 12 hex digits.
    #[arg(long)]
    pub sqn: String,
    /// AMF, 4 hex digits.
    #[arg(long)]
    pub amf: String,
    /// One JSON object of lower-case hex.
    #[arg(long)]
    pub json: bool,
}

// Holds key material: never printed.
impl std::fmt::Debug for MilenageArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MilenageArgs")
    }
}

/// `n` bytes from hex (either case), or an error naming the option.
fn hex_arg<const N: usize>(name: &str, value: &str) -> anyhow::Result<Zeroizing<[u8; N]>> {
    let mut out = Zeroizing::new([0u8; N]);
    let bytes = Zeroizing::new(hex::decode(value.trim()).unwrap_or_default());
    if bytes.len() != N {
        bail!("--{name} must be {} hexadecimal digits", N * 2);
    }
    out.copy_from_slice(&bytes);
    Ok(out)
}

/// `simvault milenage`: computes f1–f5* for one challenge, offline.
pub(super) fn run(args: &MilenageArgs) -> anyhow::Result<()> {
    use crate::domain::milenage::{Milenage, opc_from_op};
    let k = hex_arg::<16>("k", &args.k)?;
    let opc = match (&args.opc, &args.op) {
        (Some(opc), _) => hex_arg::<16>("opc", opc)?,
        (None, Some(op)) => opc_from_op(&k, &*hex_arg::<16>("op", op)?),
        (None, None) => bail!("give --opc or --op"),
    };
    let rand = hex_arg::<16>("rand", &args.rand)?;
    let sqn = hex_arg::<6>("sqn", &args.sqn)?;
    let amf = hex_arg::<2>("amf", &args.amf)?;
    let out = Milenage::new(&k, &opc).compute(&rand, &sqn, &amf);
    let fields = [
        ("opc", hex::encode(*opc)),
        ("mac_a", hex::encode(out.mac_a)),
        ("mac_s", hex::encode(out.mac_s)),
        ("res", hex::encode(out.res)),
        ("ck", hex::encode(*out.ck)),
        ("ik", hex::encode(*out.ik)),
        ("ak", hex::encode(out.ak)),
        ("ak_star", hex::encode(out.ak_star)),
        ("autn", hex::encode(out.autn(&sqn, &amf))),
    ];
    if args.json {
        let map: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| ((*k).to_owned(), serde_json::Value::String(v.clone())))
            .collect();
        println!("{}", serde_json::Value::Object(map));
    } else {
        for (name, value) in &fields {
            println!("{name:<8} {value}");
        }
    }
    Ok(())
}
