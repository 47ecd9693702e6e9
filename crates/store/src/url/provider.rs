//! S3-compatible providers and their presets: where each one's endpoint is, which region it
//! takes when the URL gives none, and how it addresses buckets.

/// S3-compatible providers with a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Provider {
    /// Amazon S3.
    Aws,
    /// Backblaze B2.
    Backblaze,
    /// Cloudflare R2.
    Cloudflare,
    /// Wasabi.
    Wasabi,
    /// MinIO (self-hosted: give the endpoint).
    Minio,
    /// Storj (S3 gateway).
    Storj,
    /// DigitalOcean Spaces.
    DigitalOcean,
    /// Linode (Akamai) Object Storage.
    Linode,
    /// Vultr Object Storage.
    Vultr,
    /// Scaleway Object Storage.
    Scaleway,
    /// iDrive e2 (give the endpoint shown in its console).
    IDrive,
    /// Any other S3-compatible server (give the endpoint).
    Generic,
}

/// How a provider's endpoint and region are found.
pub(super) struct Preset {
    pub(super) provider: Provider,
    /// The names accepted for `provider=`.
    pub(super) names: &'static [&'static str],
    /// The endpoint, with `{region}` and `{account}` filled in; `None`: the URL must give one.
    pub(super) endpoint: Option<&'static str>,
    /// The region used when the URL gives none; `None`: the URL must give one.
    pub(super) region: Option<&'static str>,
    /// Whether buckets are addressed in the path by default.
    pub(super) path_style: bool,
}

/// The presets, from each provider's documentation of its S3 endpoint.
const PRESETS: &[Preset] = &[
    Preset {
        provider: Provider::Aws,
        names: &["aws", "s3", "amazon"],
        endpoint: Some("https://s3.{region}.amazonaws.com"),
        region: Some("us-east-1"),
        path_style: false,
    },
    Preset {
        provider: Provider::Backblaze,
        names: &["b2", "backblaze"],
        endpoint: Some("https://s3.{region}.backblazeb2.com"),
        region: None,
        path_style: true,
    },
    Preset {
        provider: Provider::Cloudflare,
        names: &["r2", "cloudflare"],
        endpoint: Some("https://{account}.r2.cloudflarestorage.com"),
        region: Some("auto"),
        path_style: true,
    },
    Preset {
        provider: Provider::Wasabi,
        names: &["wasabi"],
        endpoint: Some("https://s3.{region}.wasabisys.com"),
        region: Some("us-east-1"),
        path_style: true,
    },
    Preset {
        provider: Provider::Minio,
        names: &["minio"],
        endpoint: None,
        region: Some("us-east-1"),
        path_style: true,
    },
    Preset {
        provider: Provider::Storj,
        names: &["storj"],
        endpoint: Some("https://gateway.storjshare.io"),
        region: Some("us1"),
        path_style: true,
    },
    Preset {
        provider: Provider::DigitalOcean,
        names: &["digitalocean", "do", "spaces"],
        endpoint: Some("https://{region}.digitaloceanspaces.com"),
        region: None,
        path_style: false,
    },
    Preset {
        provider: Provider::Linode,
        names: &["linode", "akamai"],
        endpoint: Some("https://{region}.linodeobjects.com"),
        region: None,
        path_style: false,
    },
    Preset {
        provider: Provider::Vultr,
        names: &["vultr"],
        endpoint: Some("https://{region}.vultrobjects.com"),
        region: None,
        path_style: true,
    },
    Preset {
        provider: Provider::Scaleway,
        names: &["scaleway", "scw"],
        endpoint: Some("https://s3.{region}.scw.cloud"),
        region: Some("fr-par"),
        path_style: false,
    },
    Preset {
        provider: Provider::IDrive,
        names: &["idrive", "idrive-e2", "e2"],
        endpoint: None,
        region: Some("us-east-1"),
        path_style: true,
    },
    Preset {
        provider: Provider::Generic,
        names: &["generic", "custom"],
        endpoint: None,
        region: Some("us-east-1"),
        path_style: true,
    },
];

impl Preset {
    /// The preset of `provider`.
    pub(super) fn of(provider: Provider) -> &'static Preset {
        PRESETS
            .iter()
            .find(|p| p.provider == provider)
            .unwrap_or(&PRESETS[0])
    }

    /// The preset one of whose names is `name` (in any case).
    pub(super) fn named(name: &str) -> Option<&'static Preset> {
        let name = name.to_ascii_lowercase();
        PRESETS.iter().find(|p| p.names.contains(&name.as_str()))
    }

    /// Each provider's first name, as `provider=` takes it.
    pub(super) fn names() -> Vec<&'static str> {
        PRESETS.iter().map(|p| p.names[0]).collect()
    }
}
