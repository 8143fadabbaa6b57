//! SMS length accounting the way handsets and gateways count it.
//!
//! Operators bill per segment, and a single character outside the GSM 03.38
//! default alphabet switches the whole message to UCS-2, which cuts a part from
//! 160 to 70 characters. Spanish texts hit this constantly (`á í ó ú` are not in
//! GSM-7 although `é ñ ü ¿ ¡` are), so this module measures texts, splits them
//! into the parts a gateway sends, and can transliterate to stay in GSM-7.

use std::borrow::Cow;

use serde::Serialize;

/// Character set a message is sent in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SmsEncoding {
    /// GSM 03.38 default alphabet: 7-bit septets, extension characters take two.
    #[serde(rename = "GSM-7")]
    Gsm7,
    /// 16-bit units. Handsets send characters outside the BMP (emoji) as UTF-16
    /// surrogate pairs, so those take two units, as operators count them.
    #[serde(rename = "UCS-2")]
    Ucs2,
}

impl SmsEncoding {
    pub fn as_str(&self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "GSM-7",
            SmsEncoding::Ucs2 => "UCS-2",
        }
    }

    /// Value of Kannel's `coding` parameter: 0 is the 7-bit default alphabet,
    /// 2 is UCS-2.
    pub fn kannel_coding(&self) -> &'static str {
        match self {
            SmsEncoding::Gsm7 => "0",
            SmsEncoding::Ucs2 => "2",
        }
    }

    /// Units that fit in a message sent as a single part.
    fn single_part_limit(self) -> usize {
        match self {
            SmsEncoding::Gsm7 => 160,
            SmsEncoding::Ucs2 => 70,
        }
    }

    /// Units per part of a concatenated message: the 6-octet user data header
    /// that lets the handset reassemble the parts leaves 134 of the 140 octets,
    /// 153 septets (after padding to a septet boundary) or 67 UCS-2 units.
    fn multi_part_limit(self) -> usize {
        match self {
            SmsEncoding::Gsm7 => 153,
            SmsEncoding::Ucs2 => 67,
        }
    }

    /// Units `c` takes in this encoding; only called with characters the
    /// encoding can carry.
    fn units(self, c: char) -> usize {
        match self {
            SmsEncoding::Gsm7 => usize::from(gsm7_septets(c)),
            SmsEncoding::Ucs2 => c.len_utf16(),
        }
    }
}

/// What a text costs to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SmsInfo {
    pub encoding: SmsEncoding,
    /// Unicode scalar values, what an editor shows as the length.
    pub characters: usize,
    /// Septets for GSM-7, UTF-16 code units for UCS-2.
    pub units: usize,
    /// Parts the operator bills; an empty text still counts as one message.
    pub segments: usize,
}

/// A text ready to hand to a gateway, with its measure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedSms {
    pub text: String,
    pub info: SmsInfo,
}

/// Septets of the ASCII range, looked up by index because nearly every
/// character of a message is ASCII: 1 in the basic table, 2 in the extension
/// table (ESC + code), 0 when absent (control characters, DEL and the backtick).
const ASCII_SEPTETS: [u8; 128] = {
    let mut table = [1u8; 128];
    let mut i = 0;
    while i < 0x20 {
        table[i] = 0;
        i += 1;
    }
    table[b'\n' as usize] = 1;
    table[b'\r' as usize] = 1;
    table[0x0c] = 2; // form feed
    table[0x7f] = 0;
    table[b'`' as usize] = 0;
    let extension = b"^{}\\[~]|";
    let mut j = 0;
    while j < extension.len() {
        table[extension[j] as usize] = 2;
        j += 1;
    }
    table
};

/// Septets `c` takes in GSM-7, 0 when it is not in the alphabet.
fn gsm7_septets(c: char) -> u8 {
    if c.is_ascii() {
        return ASCII_SEPTETS[c as usize];
    }
    match c {
        '£' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | 'Ø' | 'ø' | 'Å' | 'å' | 'Δ' | 'Φ' | 'Γ'
        | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É' | '¤' | '¡' | 'Ä'
        | 'Ö' | 'Ñ' | 'Ü' | '§' | '¿' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à' => 1,
        '€' => 2,
        _ => 0,
    }
}

/// Whether `c` is in the GSM 03.38 basic or extension table.
pub fn is_gsm7(c: char) -> bool {
    gsm7_septets(c) != 0
}

/// Measures `text` without allocating, since it runs for every message sent.
pub fn measure(text: &str) -> SmsInfo {
    let (characters, septets, utf16_units, all_gsm7) = if text.is_ascii() {
        // Nearly every message: a byte is a character and a UTF-16 unit, and
        // its septets are a table lookup without decoding.
        let mut septets = 0;
        let mut all_gsm7 = true;
        for b in text.bytes() {
            match ASCII_SEPTETS[usize::from(b)] {
                0 => all_gsm7 = false,
                n => septets += usize::from(n),
            }
        }
        (text.len(), septets, text.len(), all_gsm7)
    } else {
        let mut characters = 0;
        let mut septets = 0;
        let mut utf16_units = 0;
        let mut all_gsm7 = true;
        for c in text.chars() {
            characters += 1;
            utf16_units += c.len_utf16();
            match gsm7_septets(c) {
                0 => all_gsm7 = false,
                n => septets += usize::from(n),
            }
        }
        (characters, septets, utf16_units, all_gsm7)
    };
    let (encoding, units) = if all_gsm7 {
        (SmsEncoding::Gsm7, septets)
    } else {
        (SmsEncoding::Ucs2, utf16_units)
    };
    // Dividing by the part size would undercount: the split moves a character
    // that does not fit whole to the next part, so the parts are counted by
    // splitting.
    let segments = if units <= encoding.single_part_limit() {
        1
    } else {
        Parts::new(text, encoding).count()
    };
    SmsInfo {
        encoding,
        characters,
        units,
        segments,
    }
}

/// Splits `text` into the parts a gateway sends: the whole text when it fits in
/// a single message (an empty text is one empty part, matching
/// [`measure`]'s one segment), otherwise parts of at most 153 septets or 67
/// units that never cut an escape sequence or a surrogate pair. The gateway
/// splits what aviso sends; the tests split the same way to check the counts.
#[cfg(test)]
fn split_parts(text: &str) -> Vec<String> {
    let info = measure(text);
    if info.segments == 1 {
        return vec![text.to_owned()];
    }
    Parts::new(text, info.encoding).map(str::to_owned).collect()
}

/// Greedy split into the parts of a concatenated message: each part takes as
/// many whole characters as fit, because a handset cannot reassemble an escape
/// sequence or a surrogate pair cut between two parts.
struct Parts<'a> {
    rest: &'a str,
    encoding: SmsEncoding,
}

impl<'a> Parts<'a> {
    fn new(text: &'a str, encoding: SmsEncoding) -> Self {
        Parts {
            rest: text,
            encoding,
        }
    }
}

impl<'a> Iterator for Parts<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let encoding = self.encoding;
        let limit = encoding.multi_part_limit();
        let mut filled = 0;
        let end = self
            .rest
            .char_indices()
            .find_map(|(i, c)| {
                filled += encoding.units(c);
                (filled > limit).then_some(i)
            })
            .unwrap_or(self.rest.len());
        let (part, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(part)
    }
}

/// Replaces characters outside GSM-7 with their nearest faithful GSM-7 text, so
/// that a Spanish message is not billed as UCS-2 for one accent. Characters
/// with no faithful equivalent (emoji, CJK, Arabic...) are kept: the message
/// then stays UCS-2 rather than losing content. Borrows when nothing changes.
pub fn transliterate(text: &str) -> Cow<'_, str> {
    let ascii_kept = ascii_kept_len(text);
    let Some(first) = text[ascii_kept..]
        .find(|c| gsm7_equivalent(c).is_some())
        .map(|i| ascii_kept + i)
    else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len());
    out.push_str(&text[..first]);
    let mut rest = &text[first..];
    while let Some(c) = rest.chars().next() {
        match gsm7_equivalent(c) {
            Some(replacement) => out.push_str(replacement),
            None => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
        let kept = ascii_kept_len(rest);
        out.push_str(&rest[..kept]);
        rest = &rest[kept..];
    }
    Cow::Owned(out)
}

/// Length of the run of ASCII characters at the start of `text` that
/// transliteration keeps: nearly all of a message, skipped by table lookup
/// instead of decoding and matching each character. The run ends on a
/// character boundary, since every byte in it is a whole character.
fn ascii_kept_len(text: &str) -> usize {
    text.bytes()
        .position(|b| !b.is_ascii() || ASCII_REPLACED[usize::from(b)])
        .unwrap_or(text.len())
}

/// The ASCII characters [`gsm7_equivalent`] replaces (the backtick, the tab).
const ASCII_REPLACED: [bool; 128] = {
    let mut table = [false; 128];
    let mut i = 0;
    while i < 128 {
        table[i] = gsm7_equivalent(i as u8 as char).is_some();
        i += 1;
    }
    table
};

/// GSM-7 text for a character outside GSM-7 that reads the same to a Spanish,
/// Portuguese, French or English reader. Only characters outside the alphabet
/// are listed, so transliteration never alters a character a handset can show.
const fn gsm7_equivalent(c: char) -> Option<&'static str> {
    Some(match c {
        'á' | 'â' | 'ã' => "a",
        'Á' | 'À' | 'Â' | 'Ã' => "A",
        'ê' | 'ë' => "e",
        'È' | 'Ê' | 'Ë' => "E",
        'í' | 'î' | 'ï' => "i",
        'Í' | 'Ì' | 'Î' | 'Ï' => "I",
        'ó' | 'ô' | 'õ' => "o",
        'Ó' | 'Ò' | 'Ô' | 'Õ' => "O",
        'ú' | 'û' => "u",
        'Ú' | 'Ù' | 'Û' => "U",
        'ÿ' => "y",
        'Ÿ' => "Y",
        // GSM-7 has only the capital; handsets commonly render it as either.
        'ç' => "Ç",
        'œ' => "oe",
        'Œ' => "OE",
        'º' => "o",
        'ª' => "a",
        '‘' | '’' | '‚' | '‛' | '′' | '‹' | '›' | '`' | '´' => "'",
        '“' | '”' | '„' | '‟' | '″' | '«' | '»' => "\"",
        '‐' | '‑' | '‒' | '–' | '—' | '―' | '−' => "-",
        // A dash reads as a list marker and as a separator, the two uses of a
        // bullet in a message; an asterisk would read as a footnote mark.
        '•' => "-",
        '…' => "...",
        '\t'
        | '\u{a0}'
        | '\u{1680}'
        | '\u{2000}'..='\u{200a}'
        | '\u{202f}'
        | '\u{205f}'
        | '\u{3000}' => " ",
        _ => return None,
    })
}

/// The text to send and its measure: transliterated first when `transliterate`
/// is true.
pub fn prepare(text: &str, transliterate: bool) -> PreparedSms {
    let text = if transliterate {
        self::transliterate(text).into_owned()
    } else {
        text.to_owned()
    };
    let info = measure(&text);
    PreparedSms { text, info }
}

#[cfg(test)]
mod tests;
