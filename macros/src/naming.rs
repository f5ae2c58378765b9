//! go-micro's naming rules, mirrored from the runtime (`rmicro::rpc::endpoint_name`,
//! `rmicro::config::valid_name`) so that the macros can check them at compile time.

/// go-micro's endpoint naming: `StudentService` + `get_student` -> `StudentService.GetStudent`.
pub(crate) fn endpoint_name(handler: &str, method: &str) -> String {
    let mut out = String::with_capacity(handler.len() + method.len() + 1);
    out.push_str(handler);
    out.push('.');
    for part in method.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(first) = chars.next() {
            out.extend(first.to_uppercase());
            out.push_str(chars.as_str());
        }
    }
    out
}

/// The first character go-micro does not accept in a service name (letters, digits, `.`, `_`,
/// `-`), if any.
pub(crate) fn invalid_name_char(name: &str) -> Option<char> {
    name.chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
}

/// How a character is shown in a message: visible characters in backticks, the rest by name.
pub(crate) fn show_char(c: char) -> String {
    match c {
        ' ' => "a space".to_owned(),
        '\t' => "a tab".to_owned(),
        '\n' | '\r' => "a line break".to_owned(),
        c if c.is_control() || c.is_whitespace() => format!("`{}`", c.escape_unicode()),
        c => format!("`{c}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_names_match_the_runtime() {
        assert_eq!(
            endpoint_name("StudentService", "get_student"),
            "StudentService.GetStudent"
        );
        assert_eq!(endpoint_name("S", "ping"), "S.Ping");
        assert_eq!(endpoint_name("S", "get_v2_by_id"), "S.GetV2ById");
        assert_eq!(endpoint_name("S", "getStudent"), "S.GetStudent");
        assert_eq!(endpoint_name("S", "get__student_"), "S.GetStudent");
    }

    #[test]
    fn names_take_letters_digits_dot_underscore_dash() {
        assert_eq!(invalid_name_char("go.micro.srv-student_v2"), None);
        assert_eq!(invalid_name_char("student service"), Some(' '));
        assert_eq!(invalid_name_char("student/service"), Some('/'));
        assert_eq!(invalid_name_char("étudiant"), Some('é'));
        assert_eq!(show_char(' '), "a space");
        assert_eq!(show_char('/'), "`/`");
    }
}
