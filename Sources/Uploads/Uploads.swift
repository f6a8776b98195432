/// Streaming multipart uploads, content sniffing and media header probing (see `UploadValidator`).
public enum Uploads {}
