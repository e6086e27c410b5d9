//! A SIM's identifier: a UUID of its own type, so that no other id (a task's, a webhook's, a
//! plan's) can be passed where a SIM is meant.

super::ids::uuid_id! {
    /// A SIM's identifier. Written and read exactly as its UUID (JSON, URLs, the database).
    SimId
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sim_id_reads_and_writes_as_its_uuid() {
        let u = uuid::Uuid::new_v4();
        let id = SimId::from(u);
        assert_eq!(id.to_string(), u.to_string());
        assert_eq!(
            serde_json::to_string(&id).unwrap(),
            serde_json::to_string(&u).unwrap()
        );
        assert_eq!(id.to_string().parse::<SimId>().unwrap(), id);
        assert!("not-a-uuid".parse::<SimId>().is_err());
    }
}
