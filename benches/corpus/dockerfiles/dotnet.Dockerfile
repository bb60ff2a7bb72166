# .NET API: restore with a cache, publish trimmed, run on the chiseled image.
ARG DOTNET_VERSION=8.0
FROM --platform=$BUILDPLATFORM mcr.microsoft.com/dotnet/sdk:${DOTNET_VERSION} AS build
ARG TARGETARCH
WORKDIR /source

# copy csproj and restore as distinct layers
COPY --link *.sln .
COPY --link src/Api/*.csproj src/Api/
COPY --link src/Domain/*.csproj src/Domain/
COPY --link tests/Api.Tests/*.csproj tests/Api.Tests/
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet restore -a $TARGETARCH

# copy and publish app and libraries
COPY --link . .
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet publish src/Api -a $TARGETARCH --no-restore -c Release -o /app \
        -p:PublishTrimmed=true -p:InvariantGlobalization=true

FROM build AS test
RUN --mount=type=cache,id=nuget,target=/root/.nuget/packages \
    dotnet test tests/Api.Tests --no-restore --logger "console;verbosity=minimal"

FROM mcr.microsoft.com/dotnet/runtime-deps:${DOTNET_VERSION}-jammy-chiseled
ENV ASPNETCORE_HTTP_PORTS=8080 \
    DOTNET_SYSTEM_GLOBALIZATION_INVARIANT=true
EXPOSE 8080
WORKDIR /app
COPY --link --from=build /app .
USER $APP_UID
ENTRYPOINT ["./Api"]
