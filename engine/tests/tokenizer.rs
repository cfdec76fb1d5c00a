//! The shipped tokenizer: round trips, digits one per token, awkward text.

#![cfg(not(target_arch = "wasm32"))]

use engine::TextTokenizer;

fn shipped() -> TextTokenizer {
    TextTokenizer::from_json(include_bytes!("../../public/models/tokenizer.json")).unwrap()
}

#[test]
fn round_trips_english_emoji_and_right_to_left_text() {
    let tok = shipped();
    for text in [
        "It is a truth universally acknowledged, that a single man",
        "emoji 🙂🚀 and accents: café, naïve",
        "עברית וערבית: مرحبا بالعالم",
        "",
    ] {
        let pieces = tok.encode(text).unwrap();
        let ids: Vec<u32> = pieces.iter().map(|p| p.id).collect();
        assert_eq!(tok.decode(&ids).unwrap(), text);
        assert!(ids.iter().all(|&id| (id as usize) < tok.vocab_size()));
    }
}

#[test]
fn digits_are_one_token_each() {
    let tok = shipped();
    let pieces = tok.encode("The magic number is 4071936.").unwrap();
    let digits: Vec<&str> = pieces
        .iter()
        .map(|p| p.text.trim())
        .filter(|t| t.chars().all(|c| c.is_ascii_digit()) && !t.is_empty())
        .collect();
    assert_eq!(digits, vec!["4", "0", "7", "1", "9", "3", "6"]);
}

#[test]
fn end_of_text_is_a_single_token_and_garbage_json_is_an_error() {
    let tok = shipped();
    let eot = tok.token_id("<|endoftext|>").expect("end-of-text token");
    assert_eq!(
        tok.encode("<|endoftext|>")
            .unwrap()
            .iter()
            .map(|p| p.id)
            .collect::<Vec<_>>(),
        vec![eot]
    );
    assert!(TextTokenizer::from_json(b"{\"model\": 3}").is_err());
    assert!(TextTokenizer::from_json(b"").is_err());
}
