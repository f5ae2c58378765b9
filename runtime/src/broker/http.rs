//! The default broker: go-micro's http broker. (Being written.)
