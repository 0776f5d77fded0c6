// echarts' core/charts/components/renderers typings re-export extensionless paths, which NodeNext resolution
// does not follow; these point TypeScript at the same declarations through the package's exports map.
declare module 'echarts/core' { export * from 'echarts/types/dist/core'; }
declare module 'echarts/charts' { export * from 'echarts/types/dist/charts'; }
declare module 'echarts/components' { export * from 'echarts/types/dist/components'; }
declare module 'echarts/renderers' { export * from 'echarts/types/dist/renderers'; }
