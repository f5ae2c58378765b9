//! The default registry: go-micro's mDNS encoding. (Being written.)
