import { create } from '@bufbuild/protobuf';
import type { HandlerContext, ServiceImpl } from '@connectrpc/connect';
import { Code, ConnectError } from '@connectrpc/connect';
import type { AppService } from '@zitadel/proto/zitadel/app/v2beta/app_service_pb.js';
import { APIConfigSchema } from '@zitadel/proto/zitadel/app/v2beta/api_pb.js';
import { OIDCConfigSchema, OIDCGrantType, OIDCTokenType } from '@zitadel/proto/zitadel/app/v2beta/oidc_pb.js';
import type { ProjectService } from '@zitadel/proto/zitadel/project/v2beta/project_service_pb.js';
import type { Permission, SimulatorState } from './state.js';

/**
 * Enough of ZITADEL's v2beta Project and App services for `doctor` to read the OIDC applications: projects, and
 * per project its applications with the settings that decide what an eviction does (docs/zitadel-behaviour.md#what-deleting-a-session-does-to-apps-and-refresh-tokens).
 */

export interface SimOidcApp {
  backChannelLogoutUri?: string;
  accessTokenType?: 'bearer' | 'jwt';
  grantTypes?: ('authorization_code' | 'implicit' | 'refresh_token' | 'device_code')[];
}

export interface SimApplication {
  id: string;
  projectId: string;
  name: string;
  oidc?: SimOidcApp | undefined;
}

const GRANT_TYPES = {
  authorization_code: OIDCGrantType.OIDC_GRANT_TYPE_AUTHORIZATION_CODE,
  implicit: OIDCGrantType.OIDC_GRANT_TYPE_IMPLICIT,
  refresh_token: OIDCGrantType.OIDC_GRANT_TYPE_REFRESH_TOKEN,
  device_code: OIDCGrantType.OIDC_GRANT_TYPE_DEVICE_CODE,
};

export function authorize(state: SimulatorState, context: HandlerContext, permission: Permission): void {
  const token = /^Bearer (.+)$/.exec(context.requestHeader.get('authorization') ?? '')?.[1];
  const granted = state.permissionsOf(token);
  if (!granted) throw new ConnectError('Errors.Token.Invalid (AUTH-7fs1e)', Code.Unauthenticated);
  if (!granted.has(permission)) throw new ConnectError('No matching permissions found (AUTH-5mWD2)', Code.PermissionDenied);
}

export function projectServiceImpl(state: SimulatorState): Partial<ServiceImpl<typeof ProjectService>> {
  return {
    listProjects(_request, context) {
      authorize(state, context, 'project.read');
      const projects = [...state.projects.values()];
      return {
        pagination: { totalResult: BigInt(projects.length), appliedLimit: 100n },
        projects: projects.map((p) => ({ id: p.id, name: p.name, organizationId: p.organizationId })),
      };
    },
  };
}

export function appServiceImpl(state: SimulatorState): Partial<ServiceImpl<typeof AppService>> {
  return {
    listApplications(request, context) {
      authorize(state, context, 'project.app.read');
      if (!state.projects.has(request.projectId)) throw new ConnectError('Errors.Project.NotFound', Code.NotFound);
      const apps = [...state.applications.values()].filter((app) => app.projectId === request.projectId);
      return {
        pagination: { totalResult: BigInt(apps.length), appliedLimit: 100n },
        applications: apps.map((app) => ({
          id: app.id,
          name: app.name,
          config: app.oidc
            ? {
                case: 'oidcConfig' as const,
                value: create(OIDCConfigSchema, {
                  backChannelLogoutUri: app.oidc.backChannelLogoutUri ?? '',
                  accessTokenType: app.oidc.accessTokenType === 'jwt' ? OIDCTokenType.OIDC_TOKEN_TYPE_JWT : OIDCTokenType.OIDC_TOKEN_TYPE_BEARER,
                  grantTypes: (app.oidc.grantTypes ?? ['authorization_code']).map((grant) => GRANT_TYPES[grant]),
                }),
              }
            : { case: 'apiConfig' as const, value: create(APIConfigSchema) },
        })),
      };
    },
  };
}
