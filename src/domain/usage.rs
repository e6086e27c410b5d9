//! Data used in the current billing period and its limit, as the carrier reports them.

use serde::{Deserialize, Serialize};

/// Megabytes or gigabytes, decimal as the contract says: 1 GB = 1,000 MB, 1 MB = 1,000,000 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataUnit {
    #[serde(rename = "MB")]
    Mb,
    #[serde(rename = "GB")]
    Gb,
}

/// An amount of data, e.g. `{"amount": 1.5, "unit": "GB"}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataAmount {
    pub amount: f64,
    pub unit: DataUnit,
}

impl DataAmount {
    /// Parses and checks an amount: finite, not negative, at most 10^12 of its unit.
    pub fn parse(v: &serde_json::Value) -> Result<Self, &'static str> {
        let d: DataAmount = serde_json::from_value(v.clone())
            .map_err(|_| "must be {amount, unit} with unit MB or GB")?;
        if !d.amount.is_finite() || d.amount < 0.0 || d.amount > 1e12 {
            return Err("amount must be a number from 0");
        }
        Ok(d)
    }

    /// An amount as stored (its JSON text), checked as [`DataAmount::parse`] checks one.
    pub fn parse_text(text: &str) -> Option<Self> {
        serde_json::from_str::<serde_json::Value>(text)
            .ok()
            .and_then(|v| DataAmount::parse(&v).ok())
    }

    /// In whole bytes (rounded): decimal units compared exactly, where megabytes as floating
    /// point would judge 1.001 GB below 1,001 MB.
    pub fn bytes(self) -> u128 {
        // Amounts are checked finite, not negative and at most 10^12 GB (10^21 bytes) on the
        // way in, so the float-to-int conversion neither saturates nor loses sign.
        (self.megabytes() * 1e6).round() as u128
    }

    /// In megabytes, the one unit lists sort by.
    pub fn megabytes(self) -> f64 {
        match self.unit {
            DataUnit::Mb => self.amount,
            DataUnit::Gb => self.amount * 1000.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn amounts_parse_and_normalise() {
        let d = DataAmount::parse(&json!({"amount": 1.5, "unit": "GB"})).unwrap();
        assert_eq!(d.megabytes(), 1500.0);
        assert_eq!(
            DataAmount::parse(&json!({"amount": 20, "unit": "MB"}))
                .unwrap()
                .megabytes(),
            20.0
        );
        for bad in [
            json!({"amount": -1, "unit": "MB"}),
            json!({"amount": 1, "unit": "TB"}),
            json!({"amount": "1", "unit": "MB"}),
            json!({"amount": 1}),
            json!(5),
        ] {
            assert!(DataAmount::parse(&bad).is_err(), "{bad}");
        }
    }
}
