//! Throwaway certificates for the TLS tests, made with the `openssl` CLI: a CA of its own and
//! a server certificate it signs for `127.0.0.1` (IP SAN) and `localhost` (DNS SAN), P-256
//! keys, valid for two days. Each set lives in a directory of its own, under fixed names, so a
//! child process given the directory finds the same files.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::require;

/// The CA's extensions: a root that may sign server certificates.
const CA_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
x509_extensions = ca
[dn]
CN = NAME
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
";

/// The server certificate's extensions: `127.0.0.1` and `localhost`, server authentication.
const SERVER_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = localhost
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
";

/// A client certificate's extensions, for mutual TLS.
const CLIENT_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = NAME
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
";

/// A CA and the server certificate it signed, as PEM files in one directory.
#[derive(Debug, Clone)]
pub struct Certs {
    dir: PathBuf,
}

impl Certs {
    /// Makes a CA whose subject is `CN=<ca_name>` and a server certificate it signs, in
    /// `dir` (created if missing).
    pub fn generate(dir: &Path, ca_name: &str) -> Certs {
        std::fs::create_dir_all(dir).expect("certificate directory");
        let certs = Certs::at(dir);
        let write = |name: &str, text: &str| {
            std::fs::write(dir.join(name), text).unwrap_or_else(|e| panic!("writing {name}: {e}"))
        };
        write("ca.cnf", &CA_CONFIG.replace("NAME", ca_name));
        write("server.cnf", SERVER_CONFIG);
        let p256 = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut ca = vec!["req", "-x509", "-new"];
        ca.extend(p256);
        ca.extend([
            "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-config", "ca.cnf",
        ]);
        openssl(dir, &ca);
        let mut request = vec!["req", "-new"];
        request.extend(p256);
        request.extend([
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-config",
            "server.cnf",
        ]);
        openssl(dir, &request);
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "2",
                "-extfile",
                "server.cnf",
                "-extensions",
                "server",
            ],
        );
        certs
    }

    /// The certificates [`Certs::generate`] made in `dir` earlier (maybe in another
    /// process).
    pub fn at(dir: &Path) -> Certs {
        Certs {
            dir: dir.to_path_buf(),
        }
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate (PEM): what a client must trust.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The server certificate (PEM), signed by [`Certs::ca`].
    pub fn cert(&self) -> PathBuf {
        self.dir.join("server.pem")
    }

    /// The server's private key (PEM, PKCS#8, unencrypted).
    pub fn key(&self) -> PathBuf {
        self.dir.join("server.key")
    }

    /// Makes a client certificate for `CN=<name>` signed by this CA (for mutual TLS): its
    /// certificate and key, `<name>.pem` and `<name>.key`.
    pub fn client(&self, name: &str) -> (PathBuf, PathBuf) {
        let dir = &self.dir;
        let config = format!("{name}.cnf");
        std::fs::write(dir.join(&config), CLIENT_CONFIG.replace("NAME", name))
            .expect("client config");
        let (key, csr, pem) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
        );
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-config",
                &config,
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &pem,
                "-days",
                "2",
                "-extfile",
                &config,
                "-extensions",
                "client",
            ],
        );
        (dir.join(pem), dir.join(key))
    }
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new(require("openssl"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {} failed ({}):\n{}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}
