import { create } from '@bufbuild/protobuf';
import type { ServiceImpl } from '@connectrpc/connect';
import { Code, ConnectError } from '@connectrpc/connect';
import type { AppService } from '@zitadel/proto/zitadel/app/v2beta/app_service_pb.js';
import { APIConfigSchema } from '@zitadel/proto/zitadel/app/v2beta/api_pb.js';
import { OIDCConfigSchema, OIDCGrantType, OIDCTokenType } from '@zitadel/proto/zitadel/app/v2beta/oidc_pb.js';
import type { ProjectService } from '@zitadel/proto/zitadel/project/v2beta/project_service_pb.js';
import { authorize } from './calls.js';
import type { SimulatorState } from './state.js';

/**
 * Enough of ZITADEL's v2beta Project and App services for `doctor` to read the OIDC applications: projects, and
 * per project its applications with the settings that decide what an eviction does (docs/zitadel-behaviour.md#what-deleting-a-session-does-to-apps-and-refresh-tokens).
 */

const GRANT_TYPES = {
  authorization_code: OIDCGrantType.OIDC_GRANT_TYPE_AUTHORIZATION_CODE,
  implicit: OIDCGrantType.OIDC_GRANT_TYPE_IMPLICIT,
  refresh_token: OIDCGrantType.OIDC_GRANT_TYPE_REFRESH_TOKEN,
  device_code: OIDCGrantType.OIDC_GRANT_TYPE_DEVICE_CODE,
};

export function projectServiceImpl(state: SimulatorState): Partial<ServiceImpl<typeof ProjectService>> {
  return {
    listProjects(_request, context) {
      authorize(state, context.requestHeader.get('authorization'), 'project.read');
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
      authorize(state, context.requestHeader.get('authorization'), 'project.app.read');
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
