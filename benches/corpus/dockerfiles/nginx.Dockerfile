# syntax=docker/dockerfile:1
#
# A web server image in the style of the official nginx image: build from
# source on a slim Debian base, keep only the runtime dependencies, run as
# an unprivileged user.
ARG DEBIAN_VERSION=bookworm
FROM debian:${DEBIAN_VERSION}-slim AS build

ARG NGINX_VERSION=1.27.2
ARG NJS_VERSION=0.8.7
ENV NGINX_VERSION=${NGINX_VERSION} \
    NJS_VERSION=${NJS_VERSION} \
    DEBIAN_FRONTEND=noninteractive

# Build dependencies: compilers and the headers of the libraries nginx links.
RUN --mount=type=cache,target=/var/cache/apt,sharing=locked \
    --mount=type=cache,target=/var/lib/apt,sharing=locked \
    set -eux; \
    apt-get update; \
    apt-get install -y --no-install-recommends \
        build-essential \
        ca-certificates \
        curl \
        gnupg \
        libpcre2-dev \
        libssl-dev \
        zlib1g-dev \
    ; \
    rm -rf /var/lib/apt/lists/*

WORKDIR /usr/src
ADD --checksum=sha256:a8a4bf1f8fa1c0b0f35d1c6cae6b5e6f64a6d1e0e27e5c9a1e4cbb8c9b2d3c4e \
    https://nginx.org/download/nginx-${NGINX_VERSION}.tar.gz /usr/src/
RUN set -eux; \
    tar -xzf nginx-${NGINX_VERSION}.tar.gz; \
    cd nginx-${NGINX_VERSION}; \
    ./configure \
        --prefix=/etc/nginx \
        --sbin-path=/usr/sbin/nginx \
        --modules-path=/usr/lib/nginx/modules \
        --conf-path=/etc/nginx/nginx.conf \
        --error-log-path=/var/log/nginx/error.log \
        --http-log-path=/var/log/nginx/access.log \
        --pid-path=/var/run/nginx.pid \
        --lock-path=/var/run/nginx.lock \
        --http-client-body-temp-path=/var/cache/nginx/client_temp \
        --http-proxy-temp-path=/var/cache/nginx/proxy_temp \
        --http-fastcgi-temp-path=/var/cache/nginx/fastcgi_temp \
        --user=nginx \
        --group=nginx \
        --with-compat \
        --with-file-aio \
        --with-threads \
        --with-http_addition_module \
        --with-http_auth_request_module \
        --with-http_gunzip_module \
        --with-http_gzip_static_module \
        --with-http_realip_module \
        --with-http_ssl_module \
        --with-http_stub_status_module \
        --with-http_sub_module \
        --with-http_v2_module \
        --with-stream \
        --with-stream_realip_module \
        --with-stream_ssl_module \
        --with-cc-opt='-g -O2 -fstack-protector-strong -Wformat -Werror=format-security' \
        --with-ld-opt='-Wl,-z,relro -Wl,-z,now -Wl,--as-needed -pie'; \
    make -j"$(nproc)"; \
    make install DESTDIR=/out; \
    strip /out/usr/sbin/nginx

FROM debian:${DEBIAN_VERSION}-slim
LABEL org.opencontainers.image.title="nginx" \
      org.opencontainers.image.description="High performance web server" \
      org.opencontainers.image.source="https://example.com/kiln/images" \
      org.opencontainers.image.licenses="BSD-2-Clause"

RUN set -eux; \
    groupadd --system --gid 101 nginx; \
    useradd --system --gid nginx --no-create-home --home /nonexistent \
        --comment "nginx user" --shell /bin/false --uid 101 nginx; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates libpcre2-8-0 libssl3 zlib1g; \
    rm -rf /var/lib/apt/lists/*; \
    mkdir -p /var/cache/nginx /var/log/nginx; \
    ln -sf /dev/stdout /var/log/nginx/access.log; \
    ln -sf /dev/stderr /var/log/nginx/error.log

COPY --from=build /out/ /
COPY --chmod=644 <<EOF /etc/nginx/conf.d/default.conf
server {
    listen       8080;
    server_name  localhost;
    location / {
        root   /usr/share/nginx/html;
        index  index.html index.htm;
    }
    error_page   500 502 503 504  /50x.html;
}
EOF
COPY docker-entrypoint.sh /
COPY --chown=nginx:nginx html/ /usr/share/nginx/html/

EXPOSE 8080
STOPSIGNAL SIGQUIT
USER nginx
HEALTHCHECK --interval=30s --timeout=3s --start-period=5s --retries=3 \
    CMD ["curl", "-fsS", "http://127.0.0.1:8080/"]
ENTRYPOINT ["/docker-entrypoint.sh"]
CMD ["nginx", "-g", "daemon off;"]
