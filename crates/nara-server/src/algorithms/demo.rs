//! The demo's algorithm work, so the register, the oversight queues and a
//! citizen's decisions are not empty the first time someone opens them:
//! decisions of every reference model made through [`run`] like any other
//! (records and ledger entries), from the models' own generators, some
//! reviewed by the demo's officials — accepted, and a few overridden with a
//! reason — and two about the demo citizen Junho. Deterministic; made once.

use nara_store::algorithms::Official;

use super::{Requested, run, tell};
use crate::AppState;

/// Junho's resident registration number (the demo's second citizen).
const JUNHO: &str = "850315-1234567";

async fn official(state: &AppState, username: &str) -> anyhow::Result<Option<(i64, String)>> {
    Ok(state
        .store
        .account_by_username(username)
        .await?
        .map(|a| (a.id, a.display_name)))
}

/// Reviews `id` as `username`: accepts it, or overrides it to `to` for `why`.
async fn review(
    state: &AppState,
    id: &str,
    username: &str,
    change: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    let Some((account_id, name)) = official(state, username).await? else {
        return Ok(());
    };
    let record = state
        .store
        .decision(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("decision {id} vanished"))?;
    let who = Official {
        account_id,
        name: &name,
    };
    match change {
        None => {
            state
                .store
                .review_decision(id, &who, "accepted", &record.outcome, None)
                .await?
        }
        Some((to, why)) => {
            state
                .store
                .review_decision(id, &who, "overridden", to, Some(why))
                .await?
        }
    }
    tell(state, id).await;
    Ok(())
}

/// The demo's hash list: PDQ hashes of twenty generated stand-in pictures
/// (ordinary shapes on gradients — no abuse material exists anywhere in
/// nara), so image matching can be tried, and two pictures to try it with
/// in `DATA/demo-images`; written once.
pub fn write_stand_in_list(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let dir = super::hash_lists_dir(data_dir);
    let file = dir.join("demo-stand-ins.txt");
    if file.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&dir)?;
    let mut text = String::from(
        "# Stand-ins for a hash list an authority supplies: PDQ hashes of generated pictures.\npdq,quality,id\n",
    );
    for seed in 0..20u64 {
        let px = nara_algorithms::images::generated_picture(seed, 320, 240);
        if let Ok((hash, quality)) = nara_algorithms::images::hash_rgb(320, 240, px) {
            text.push_str(&format!("{},{quality},stand-in-{seed}\n", hash.hex()));
        }
    }
    std::fs::write(file, text)?;
    // Two pictures to try "Check an image" with: a re-encoded copy of a
    // listed stand-in (a match) and an unrelated one.
    let samples = data_dir.join("demo-images");
    std::fs::create_dir_all(&samples)?;
    for (seed, name) in [(3u64, "listed-stand-in.jpg"), (500, "unrelated.jpg")] {
        let px = nara_algorithms::images::generated_picture(seed, 640, 480);
        std::fs::write(
            samples.join(name),
            nara_algorithms::images::jpeg(640, 480, &px, 80),
        )?;
    }
    Ok(())
}

/// Makes the demo's decisions, unless some exist already.
pub async fn ensure(state: &AppState) -> anyhow::Result<()> {
    if !state.store.review_counts().await?.is_empty() {
        return Ok(());
    }
    let system = |agency: &str, subsystem: &str| Requested {
        subject_hash: None,
        source: None,
        requested_by: format!("subsystem:{agency}/{subsystem}"),
    };
    // A junction's day, planned every half hour from its last hour's counts.
    let day = nara_algorithms::signals::generated_day(2026);
    for half in 12..44usize {
        let q = half * 2;
        // A busier junction than the evaluation's: its peaks near saturation.
        let counts = |phase: usize| -> Vec<f64> {
            day[q - 4..q]
                .iter()
                .map(|c| (c[phase] * 1.25).round())
                .collect()
        };
        let input = serde_json::json!({"phases": [
            {"name": "north-south", "saturation_veh_h": 3600, "recent_counts": counts(0)},
            {"name": "east-west", "saturation_veh_h": 3600, "recent_counts": counts(1)},
            {"name": "left turns", "saturation_veh_h": 1700, "recent_counts": counts(2)}]});
        let Ok(record) = run(
            state,
            "traffic-signals",
            input,
            system("KR/LOC/SEOUL", "signals"),
        )
        .await
        else {
            continue;
        };
        if record.state == "awaiting_review" && half % 3 != 0 {
            let change = (half == 35).then_some((
                "time_of_day_plan",
                "A concert ends at Jamsil tonight: the evening plan holds until traffic clears.",
            ));
            review(state, &record.id, "official.seoul", change).await?;
        }
    }
    // Reported calls screened (no reporter named: generated calls).
    let (_, _, calls) = nara_algorithms::phishing::corpus(77);
    for (n, call) in calls.iter().take(14).enumerate() {
        let input = serde_json::json!({ "transcript": call.text });
        let Ok(record) = run(
            state,
            "voice-phishing",
            input,
            system("KR/GOV/KNPA", "fraud-desk"),
        )
        .await
        else {
            continue;
        };
        if record.state == "awaiting_review" && n % 3 == 0 {
            let change = (n == 3).then_some((
                "ordinary_call",
                "The number belongs to the caller's own bank branch; confirmed by a call back.",
            ));
            review(state, &record.id, "official.knpa", change).await?;
        }
    }
    // Two calls Junho reported: one ordinary, one a scam an official confirmed.
    let junho = nara_core::identity::normalize_national_id(JUNHO)
        .map(|digits| state.identity.national_id_hash(&digits))
        .ok();
    for (n, transcript) in [
        "아빠 주말에 할머니 댁 몇 시에 출발해요. 열 시쯤 출발하자 차 막히니까",
        "여보세요. 금융범죄수사대 수사관인데요 본인 확인 좀 하겠습니다. 본인 명의 계좌가 자금세탁 사건에 연루되어 있습니다. 수사가 끝날 때까지 예금을 국가 안전계좌로 옮겨 두세요",
    ]
    .into_iter()
    .enumerate()
    {
        let requested = Requested {
            subject_hash: junho.clone(),
            source: Some(format!("demo:junho-call-{n}")),
            requested_by: "system".into(),
        };
        if let Ok(record) = run(state, "voice-phishing", serde_json::json!({ "transcript": transcript }), requested).await
            && record.state == "awaiting_review"
        {
            review(state, &record.id, "official.knpa", None).await?;
        }
    }
    // Zones proposed for three districts; one reviewed.
    for (n, seed) in [11u64, 12, 13].into_iter().enumerate() {
        let cells: Vec<serde_json::Value> = nara_algorithms::zones::generated_district(seed, 60)
            .into_iter()
            .map(|(c, _)| serde_json::json!({"id": format!("jongno-{seed}-{}", &c.id[5..]), "crashes": c.crashes as u64, "exposure": (c.exposure * 100.0).round() / 100.0}))
            .collect();
        if let Ok(record) = run(
            state,
            "elderly-protection-zones",
            serde_json::json!({"cells": cells, "select": 5}),
            system("KR/LOC/SEOUL", "road-safety"),
        )
        .await
            && n == 0
        {
            review(state, &record.id, "official.seoul", None).await?;
        }
    }
    // Two submitted images checked: a re-sized copy of a stand-in (a match,
    // waiting for the trained official) and an unrelated picture.
    for seed in [3u64, 500] {
        let px = nara_algorithms::images::generated_picture(seed, 320, 240);
        let small = image_half(&px, 320, 240);
        if let Ok((hash, quality)) = nara_algorithms::images::hash_rgb(160, 120, small) {
            let _ = run(
                state,
                "image-hash-matching",
                serde_json::json!({"pdq": hash.hex(), "quality": quality}),
                system("KR/GOV/KNPA", "uploads"),
            )
            .await;
        }
    }
    // School districts planned for the next year.
    let (_, districts) = nara_algorithms::schools::corpus(2027);
    for (n, (d, y, _)) in districts.iter().take(12).enumerate() {
        let input = serde_json::json!({
            "district": format!("학구 {:02}", n + 1),
            "children_6_8": d.children,
            "working_parents_share": (d.working_parents * 100.0).round() / 100.0,
            "new_housing_per_1000": d.new_housing.round(),
            "places": (y * if n % 3 == 0 { 0.8 } else { 1.3 }).round(),
        });
        let Ok(record) = run(
            state,
            "extended-hour-schools",
            input,
            system("KR/GOV/MOE", "planning"),
        )
        .await
        else {
            continue;
        };
        if record.state == "awaiting_review" && n % 2 == 0 {
            let change = (n == 6).then_some((
                "plan_deferred",
                "A new school opens in this district next March; its places are not in the figures yet.",
            ));
            review(state, &record.id, "official.moe", change).await?;
        }
    }
    Ok(())
}

/// A picture at half size (every other pixel of every other row).
fn image_half(rgb: &[u8], width: usize, height: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(rgb.len() / 4);
    for y in (0..height).step_by(2) {
        for x in (0..width).step_by(2) {
            let i = (y * width + x) * 3;
            out.extend_from_slice(&rgb[i..i + 3]);
        }
    }
    out
}
